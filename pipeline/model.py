"""What passes between the steps of a run: upload jobs, the stop request, and the protocols of
what the steps are given.

It sits below the steps and the runner, so they can all use these types without importing each
other; the protocols say what the steps need of the client, the fetcher and the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from pipeline.body import Body
from pipeline.located import Located
from pipeline.probe import AudioInfo
from pipeline.records import UploadResult
from pipeline.states import StopReason

T = TypeVar("T")


class Stopped(Exception):
    """The run stopped before a step finished (the step was cancelled)."""


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


@dataclasses.dataclass(frozen=True)
class Job:
    """One upload to do: these bytes, with this purpose, recorded as content `content_id`."""

    content_id: int
    source: str
    purpose: str
    filename: str
    audio: AudioInfo
    data: Located


class Uploader(Protocol):
    async def upload(
        self, body: Body, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult: ...


class Fetcher(Protocol):
    async def fetch(self, url: str) -> Located: ...


class Recorder(Protocol):
    """Where the upload step records what became of each attempt (the ledger's writer)."""

    def attempt(self, content_id: int) -> None: ...

    async def done(self, content_id: int, result: UploadResult) -> None: ...

    async def failed(
        self, content_id: int, error: str, *, trace_id: str | None, retryable: bool
    ) -> None: ...

    def leave_source(self, source: str, purpose: str, reason: str) -> None: ...
