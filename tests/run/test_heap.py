"""The heap handed back to the system while a run goes on (`run/heap.py`)."""

from __future__ import annotations

import asyncio
import os

import pytest

from pipeline.run import heap

PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def test_freed_pages_between_live_chunks_are_given_back_by_a_trim() -> None:
    trim = heap.malloc_trim()
    if trim is None:
        pytest.skip("this C library has no malloc_trim")
    # 60 KB chunks (malloc, not Python's small-object allocator), each followed by a small one
    # that stays: once the big ones are freed, their pages lie between live chunks, where
    # free() never gives them back.
    big, kept = [], []
    for _ in range(800):
        big.append(bytes(60_000))
        kept.append(bytes(1_000))
    del big
    before = resident_bytes()
    trim()
    after = resident_bytes()
    assert before - after >= 16_000_000, (before, after)  # a third of the 48 MB freed
    assert len(kept) == 800


async def test_the_heap_is_trimmed_every_interval_while_the_block_runs() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    async with heap.trimming(0.01, trim=lambda: lambda: calls.append(loop.time())):
        await asyncio.sleep(0.2)
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert seen >= 5
    assert len(calls) == seen  # none after the block


async def test_nothing_is_done_where_the_c_library_has_no_trim() -> None:
    asked: list[bool] = []

    def none() -> None:
        asked.append(True)

    async with heap.trimming(0.01, trim=none):
        await asyncio.sleep(0.05)
    assert asked == [True]  # looked for once, then never again
