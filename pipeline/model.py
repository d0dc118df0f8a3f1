"""What passes between the steps of a run: located bytes, upload jobs, the stop request.

It sits below the steps, the runner and the fetcher (it imports only `body`, `probe` and
`states`), so they can all use these types without importing each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Protocol

from pipeline.body import Body
from pipeline.probe import AudioInfo
from pipeline.states import StopReason


class Stop:
    """The run's stop request: the first reason given wins."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: StopReason | None = None

    def request(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


@dataclasses.dataclass(frozen=True)
class Located:
    """A source's bytes, found and hashed: a local file, or a temporary copy of a download."""

    sha256: str
    body: Body
    audio: AudioInfo | None = None  # None until probed
    temporary: Path | None = None  # a download's temporary file, removed by `discard`

    @property
    def size(self) -> int:
        return self.body.size

    def discard(self) -> None:
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


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
