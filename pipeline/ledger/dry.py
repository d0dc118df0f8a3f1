"""The writer of a dry run: it reads the ledger, and records nothing.

A dry run goes through the same steps as a real one, with this in place of the `Writer`: a
source is never recorded, a claim is always granted, and a link says what the ledger knows of the
content (done, failed, or new), under an id made up for this run, so the steps decide exactly as
they would for real (skip what is done, upload each new content once) without changing a byte of
the ledger.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.records import UploadResult
from pipeline.core.states import ContentStatus
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.statements import Link
from pipeline.ledger.store import Ledger


class DryWriter:
    claims = None  # a dry run shares nothing with other runs
    failure = None  # nothing is written, so nothing can fail to be

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._ids: dict[tuple[str, str], int] = {}  # made-up content ids, by (sha256, purpose)

    def record_source(self, facts: SourceFacts, **_: Any) -> None:
        """Nothing is recorded."""

    async def claim_source(self, facts: SourceFacts) -> bool:
        return True

    async def link(self, facts: SourceFacts, *, sha256: str, size: int, **_: Any) -> Link:
        """What the ledger knows of these bytes for this purpose; nothing recorded."""
        key = (sha256, facts.purpose)
        status, retryable = await self._ledger.content_of(*key) or (ContentStatus.PENDING, False)
        content_id = self._ids.setdefault(key, -1 - len(self._ids))  # never a real id
        return Link(content_id, status, retryable)

    async def reset(self, content_id: int) -> bool:
        return True

    def attempt(self, content_id: int) -> None:
        """Nothing is recorded."""

    async def done(self, content_id: int, result: UploadResult, **_: Any) -> None:
        """Nothing is recorded."""

    async def failed(
        self, content_id: int, error: str, *, trace_id: str | None, retryable: bool
    ) -> None:
        """Nothing is recorded."""

    def leave_source(self, source: str, purpose: str, reason: str) -> None:
        """Nothing is recorded."""
