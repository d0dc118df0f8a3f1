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

    def request(self, reason: StopReason) -> None:
        self.reasons.add(reason)
        if self.reason is None:
            self.reason = reason
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    async def first(self, step: Awaitable[T]) -> T:
        """`step`'s result, unless the run stops first: then `step` is cancelled and Stopped
        raised. A step that finished is returned even if the stop came too."""
        if self.requested:
            if asyncio.iscoroutine(step):
                step.close()
            raise Stopped()
        task = asyncio.ensure_future(step)
        stopping = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise Stopped()
        return task.result()

    async def nap(self, seconds: float) -> bool:
        """Sleep for `seconds`, or less if the run stops; True when it stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout=seconds)
        return self.requested
