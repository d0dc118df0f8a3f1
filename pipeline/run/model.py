"""What passes between the steps of a run: upload jobs, the stop request, and the protocols of
what the steps are given.

It sits below the steps and the runner, so they can all use these types without importing each
other; the protocols say what the steps need of the client, the fetcher and the ledger.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, TypeVar

from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.content.probe import AudioInfo
from pipeline.core.records import UploadResult
from pipeline.core.states import SourceStatus
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.statements import Link

T = TypeVar("T")


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
    async def fetch(self, url: str, *, etag: str | None = None) -> Located:
        """The bytes at `url` in a temporary file; `etag`: an object's, as its listing gave it
        (the download fails if the object is not that one any more)."""
        ...


class SourceRecorder(Protocol):
    """Where the prepare step records what it found of each source (the ledger's writer)."""

    def record_source(
        self,
        facts: SourceFacts,
        *,
        status: SourceStatus = SourceStatus.OK,
        error: str | None = None,
        retryable: bool = False,
        content_id: int | None = None,
    ) -> None: ...

    async def claim_source(self, facts: SourceFacts) -> bool: ...

    async def link(
        self,
        facts: SourceFacts,
        *,
        sha256: str,
        size: int,
        converted_from: str | None = None,
        sent_sha256: str | None = None,
    ) -> Link: ...

    async def reset(self, content_id: int) -> bool: ...


class Recorder(Protocol):
    """Where the upload step records what became of each attempt (the ledger's writer)."""

    def attempt(self, content_id: int) -> None: ...

    async def done(
        self, content_id: int, result: UploadResult, *, sent_sha256: str | None = None
    ) -> None: ...

    async def failed(
        self, content_id: int, error: str, *, trace_id: str | None, retryable: bool
    ) -> None: ...

    def leave_source(self, source: str, purpose: str, reason: str) -> None: ...
