"""The dry run's writer over a real SQLite ledger: what it answers, and what it asks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.records import UploadResult
from pipeline.ledger import open_ledger
from pipeline.ledger.dry import DryWriter
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.writer import Writer

DONE_SHA = "d" * 64


def facts(source: str, purpose: str = "song") -> SourceFacts:
    return SourceFacts(source=source, purpose=purpose, kind="file", size=10, mtime_ns=1)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[RunLedger]:
    """A ledger holding one content done (DONE_SHA, song)."""
    ledger = await open_ledger(str(tmp_path / "ingest.db"))
    writer = Writer.for_ledger(
        ledger, await ledger.start_run(pid=1, host="h", command="c"), patience=60.0
    )
    async with writer.running():
        link = await writer.link(facts("/x/done.wav"), sha256=DONE_SHA, size=10)
        await writer.done(link.content_id, UploadResult("v", "i", "t"))
    yield ledger
    await ledger.close()


def count_questions(ledger: RunLedger, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What the ledger is asked from now on about contents: each (sha256, purpose)."""
    asked: list[tuple[str, str]] = []
    content_of = ledger.content_of

    async def counted(sha256: str, purpose: str) -> Any:
        asked.append((sha256, purpose))
        return await content_of(sha256, purpose)

    monkeypatch.setattr(ledger, "content_of", counted)
    return asked


async def test_the_ledger_is_asked_once_per_content_however_many_rows_name_it(
    ledger: RunLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = count_questions(ledger, monkeypatch)
    dry = DryWriter(ledger)
    links = await asyncio.gather(
        *(dry.link(facts(f"/m.csv#{i}"), sha256=DONE_SHA, size=10) for i in range(50))
    )
    links += [await dry.link(facts(f"/m.csv#{i}"), sha256=DONE_SHA, size=10) for i in range(50)]
    assert {(link.status, link.retryable) for link in links} == {("done", False)}
    assert len({link.content_id for link in links}) == 1
    assert asked == [(DONE_SHA, "song")]


async def test_each_content_gets_its_own_made_up_id_even_when_asked_at_once(
    ledger: RunLedger,
) -> None:
    dry = DryWriter(ledger)
    shas = [f"{i:064d}" for i in range(20)]
    links = await asyncio.gather(*(dry.link(facts("/a"), sha256=s, size=1) for s in shas))
    voice = await dry.link(facts("/a", "voice"), sha256=DONE_SHA, size=10)
    ids = [link.content_id for link in [*links, voice]]
    assert len(set(ids)) == len(ids) and all(i < 0 for i in ids)  # never a real id
    assert {link.status for link in links} == {"pending"}
    assert voice.status == "pending"  # the done content is (DONE_SHA, song), not voice
