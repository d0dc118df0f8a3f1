"""The run's stop request, which every step that may wait long waits through."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from pipeline.core.errors import Stopped
from pipeline.core.states import StopReason

T = TypeVar("T")


class Stop:
    """The run's stop request: the first reason given wins. Steps that may wait long (a queue,
    a backoff, a service that is down) wait through `first` or `nap`, so they end with it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: StopReason | None = None
        self.reasons: set[StopReason] = set()  # every reason given, for the exit code
        self._waiting: set[asyncio.Task[object]] = set()  # tasks inside `first` now
        self._cancelled: set[asyncio.Task[object]] = set()  # ...that the stop has cancelled

    def request(self, reason: StopReason) -> None:
        self.reasons.add(reason)
        if self.reason is None:
            self.reason = reason
            self.event.set()
            current = asyncio.current_task()
            for task in self._waiting - {current}:
                task.cancel()
                self._cancelled.add(task)

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    async def first(self, step: Awaitable[T]) -> T:
        """`step`'s result, unless the run stops first: then `step` is cancelled and Stopped
        raised. A step that finished is returned even if the stop came too.

        The step runs in the caller's own task, which the stop cancels: the idle workers of a
        run wait here for every item they take, so no second task and no `asyncio.wait` per
        call. A queue's `get` or `put` cancelled so takes or puts nothing."""
        if self.requested:
            if asyncio.iscoroutine(step):
                step.close()
            raise Stopped()
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            result = await step
        except asyncio.CancelledError:
            if self._taken_back(task):
                raise Stopped() from None
            raise  # cancelled by someone else too: that goes on
        finally:
            self._waiting.discard(task)
        self._taken_back(task)  # the step swallowed the stop's cancel: it finished, it wins
        return result

    def _taken_back(self, task: asyncio.Task[object]) -> bool:
        """Undo the stop's cancel of `task`; True when no other cancel of it is pending."""
        if task not in self._cancelled:
            return False
        self._cancelled.discard(task)
        return task.uncancel() == 0

    async def nap(self, seconds: float) -> bool:
        """Sleep for `seconds`, or less if the run stops; True when it stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout=seconds)
        return self.requested
