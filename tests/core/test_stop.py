"""The run's stop request: what a step waiting through `Stop.first` gets."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.core.errors import Stopped
from pipeline.core.states import StopReason
from pipeline.core.stop import Stop


async def test_a_step_that_ends_first_gives_its_result() -> None:
    stop, queue = Stop(), asyncio.Queue[int]()
    asyncio.get_running_loop().call_soon(queue.put_nowait, 7)
    assert await stop.first(queue.get()) == 7
    assert not stop._waiting  # nothing left behind per call


async def test_a_stop_cancels_the_step_and_raises_stopped() -> None:
    stop, queue = Stop(), asyncio.Queue[int]()
    waiting = asyncio.create_task(stop.first(queue.get()))
    await asyncio.sleep(0.01)
    stop.request(StopReason.SIGTERM)
    with pytest.raises(Stopped):
        await waiting
    queue.put_nowait(1)
    assert queue.get_nowait() == 1  # the cancelled get took nothing


async def test_a_step_already_finished_wins_over_a_stop_that_came_too() -> None:
    stop = Stop()
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("kept")
    stop_soon = asyncio.get_running_loop().call_soon
    stop_soon(stop.request, StopReason.DEADLINE)
    assert await stop.first(done) == "kept"


async def test_a_caller_cancelled_while_waiting_takes_its_step_with_it() -> None:
    stop, queue = Stop(), asyncio.Queue[int]()
    waiting = asyncio.create_task(stop.first(queue.get()))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    queue.put_nowait(1)
    await asyncio.sleep(0.01)
    assert queue.get_nowait() == 1  # no orphaned get() swallowed the item


async def test_after_a_stop_first_refuses_at_once() -> None:
    stop = Stop()
    stop.request(StopReason.SIGINT)
    with pytest.raises(Stopped):
        await stop.first(asyncio.sleep(10))


async def test_the_stop_leaves_no_cancel_pending_on_the_waiting_task() -> None:
    stop, queue = Stop(), asyncio.Queue[int]()

    async def worker() -> str:
        with pytest.raises(Stopped):
            await stop.first(queue.get())
        await asyncio.sleep(0.01)  # would raise CancelledError if the stop's cancel lingered
        return "went on"

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)
    stop.request(StopReason.SIGINT)
    assert await task == "went on"


async def test_a_real_cancel_that_comes_with_the_stop_is_not_swallowed() -> None:
    stop, queue = Stop(), asyncio.Queue[int]()
    task = asyncio.create_task(stop.first(queue.get()))
    await asyncio.sleep(0.01)
    stop.request(StopReason.SIGINT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
