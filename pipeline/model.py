"""What passes between the steps of a run: located bytes, upload jobs, the stop request.

It sits below the steps, the runner and the fetcher (it imports only `body`, `probe` and
`states`), so they can all use these types without importing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline.body import Body
from pipeline.probe import AudioInfo
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
class Located:
    """A source's bytes, found and hashed: a local file, or a temporary copy of a download."""

    sha256: str
    body: Body
    audio: AudioInfo | None = None  # None until probed
    temporary: Path | None = None  # a download's temporary file, removed by `discard`
    on_discard: Callable[[], None] | None = None  # called once, when the temporary file goes

    @property
    def size(self) -> int:
        return self.body.size

    def discard(self) -> None:
        if self.temporary is None:
            return
        try:
            self.temporary.unlink()
        except FileNotFoundError:
            return  # discarded already
        if self.on_discard is not None:
            self.on_discard()


@dataclasses.dataclass(frozen=True)
class Job:
    """One upload to do: these bytes, with this purpose, recorded as content `content_id`."""

    content_id: int
    source: str
    purpose: str
    filename: str
    audio: AudioInfo
    data: Located


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What the service answered to an accepted upload."""

    voice_id: str | None
    instrumental_id: str | None
    trace_id: str | None


class Uploader(Protocol):
    async def upload(
        self, body: Body, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult: ...


class Fetcher(Protocol):
    async def fetch(self, url: str) -> Located: ...
