"""The writer of a dry run: it reads the ledger, and records nothing.

A dry run goes through the same steps as a real one, with this in place of the `Writer`: a
source is never recorded, a claim is always granted, and a link says what the ledger knows of the
content (done, failed, or new), under an id made up for this run, so the steps decide exactly as
they would for real (skip what is done, upload each new content once) without changing a byte of
the ledger.

What the ledger knows of a content is asked once per (sha256, purpose) and remembered: nothing
changes it during a dry run, and a manifest naming one file on many rows would otherwise pay a
query (and its thread hops) for every row.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.core.records import UploadResult
from pipeline.core.states import ContentStatus
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.statements import Link


class DryWriter:
    claims = None  # a dry run shares nothing with other runs
    failure = None  # nothing is written, so nothing can fail to be

    def __init__(self, ledger: RunLedger) -> None:
        self._ledger = ledger
        # By (sha256, purpose): the answer, or the question under way (rows of the same bytes
        # being prepared at once wait for the one query).
        self._links: dict[tuple[str, str], asyncio.Future[Link]] = {}
        self._made_up = 0  # content ids made up so far: -1, -2, ... (never a real id)

    def record_source(self, facts: SourceFacts, **_: Any) -> None:
        """Nothing is recorded."""

    async def claim_source(self, facts: SourceFacts) -> bool:
        return True

    async def link(self, facts: SourceFacts, *, sha256: str, size: int, **_: Any) -> Link:
        """What the ledger knows of these bytes for this purpose; nothing recorded."""
        key = (sha256, facts.purpose)
        known = self._links.get(key)
        if known is not None:
            return known.result() if known.done() else await asyncio.shield(known)
        future: asyncio.Future[Link] = asyncio.get_running_loop().create_future()
        self._links[key] = future
        self._made_up -= 1
        content_id = self._made_up
        try:
            status, retryable = await self._ledger.content_of(*key) or (ContentStatus.PENDING, 0)
        except BaseException as exc:
            del self._links[key]  # not known after all: the next row asks again
            future.set_exception(exc)
            future.exception()  # retrieved: nobody may be waiting
            raise
        future.set_result(Link(content_id, status, bool(retryable)))
        return future.result()

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
