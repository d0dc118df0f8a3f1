from __future__ import annotations

import asyncio

import pytest

from pipeline.core.errors import PermanentError, TransientError
from pipeline.flow.backoff import RetryPolicy, backoff, gives_up, next_wait, patience, retrying


def test_full_jitter_grows_and_is_capped() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    assert [backoff(policy, n, None, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
    ]
    assert backoff(policy, 3, None, rand=lambda: 0.25) == 1.0


def test_retry_after_wins() -> None:
    assert backoff(RetryPolicy(cap=1.0), 1, TransientError("x", retry_after=30.0)) == 30.0


async def run_with(policy: RetryPolicy, errors: list[Exception]) -> tuple[int, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0
    async for attempt in retrying(policy, sleep=sleep, rand=lambda: 1.0):
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
    return calls, slept


def test_a_slow_down_backs_off_from_base_any_other_fault_from_fault_base() -> None:
    policy = RetryPolicy(base=1.0, fault_base=0.05, cap=60.0)
    slowed = TransientError("429", slowdown="rate")
    crowded = TransientError("1041", slowdown="concurrency")
    dropped = TransientError("connection reset", unreachable=True)
    odd = TransientError("unexpected reply")

    def waits(error: TransientError) -> list[float]:
        return [backoff(policy, n, error, rand=lambda: 1.0) for n in (1, 2, 3)]

    assert waits(slowed) == waits(crowded) == [1.0, 2.0, 4.0]
    assert waits(dropped) == waits(odd) == [0.05, 0.1, 0.2]


async def test_transient_errors_are_retried_then_succeed() -> None:
    calls, slept = await run_with(
        RetryPolicy(max_attempts=5, fault_base=0.5), [TransientError("a"), TransientError("b")]
    )
    assert calls == 3 and slept == [0.5, 1.0]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors: list[Exception] = [TransientError(f"e{i}") for i in range(10)]
    with pytest.raises(TransientError, match="e2"):
        await run_with(RetryPolicy(max_attempts=3), errors)


async def test_permanent_errors_are_not_retried() -> None:
    errors: list[Exception] = [PermanentError("bad")]
    with pytest.raises(PermanentError):
        await run_with(RetryPolicy(max_attempts=5), errors)
    assert errors == []


async def test_total_backoff_is_capped_per_entry() -> None:
    errors: list[Exception] = [TransientError("slow down", retry_after=40.0) for _ in range(5)]
    with pytest.raises(TransientError):
        await run_with(RetryPolicy(max_attempts=6, max_total_wait=100.0), errors)
    assert len(errors) == 2  # 40 + 40 waited; a third 40 would pass 100, so it stopped


def test_next_wait_and_retrying_apply_the_same_policy() -> None:
    """The upload step's `next_wait` gives up exactly where tenacity's loop does."""
    policy = RetryPolicy(max_attempts=4, base=1.0, cap=60.0, max_total_wait=5.0)
    slow = TransientError("slow", slowdown="rate")
    waits, waited = [], 0.0
    for attempt in range(1, 10):
        seconds = next_wait(policy, attempt, slow, waited, rand=lambda: 1.0)
        if seconds is None:
            break
        waits.append(seconds)
        waited += seconds
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def attempts() -> None:
        async for attempt in retrying(policy, sleep=sleep, rand=lambda: 1.0):
            with attempt:
                raise slow

    with pytest.raises(TransientError):
        asyncio.run(attempts())
    assert waits == slept == [1.0, 2.0]  # a third wait of 4 s would pass 5 s of waiting


def test_patience_has_no_attempt_limit_but_a_time_limit() -> None:
    """How the ledger waits out a database server: as often as needed, for so long in all."""
    policy = patience(30.0)
    assert not gives_up(policy, 1000, waited=20.0, upcoming=5.0, elapsed=29.0)
    assert gives_up(policy, 3, waited=1.0, upcoming=1.0, elapsed=31.0)
    assert gives_up(policy, 3, waited=28.0, upcoming=5.0, elapsed=10.0)


async def test_a_non_retryable_error_is_raised_at_once() -> None:
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retrying(
            patience(30.0), sleep=asyncio.sleep, retry_on=lambda e: False
        ):
            with attempt:
                calls += 1
                raise ValueError("not worth retrying")
    assert calls == 1
