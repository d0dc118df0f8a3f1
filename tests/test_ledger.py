"""The ledger on a real SQLite file: migrations, refusals, content dedupe, derived status."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from pipeline.errors import LedgerError
from pipeline.ledger import Ledger, SourceFacts, open_ledger
from pipeline.ledger.migrate import upgrade
from pipeline.ledger.models import metadata


def url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    ledger = await open_ledger(url(tmp_path / "ingest.db"))
    yield ledger
    await ledger.close()


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    upgrade(url(tmp_path / "a.db"))
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
    engine.dispose()


def test_ledger_uses_wal(tmp_path: Path) -> None:
    async def touch() -> None:
        ledger = await open_ledger(url(tmp_path / "w.db"))
        await ledger.start_run(pid=1, host="h", command="c")
        await ledger.close()

    import asyncio

    asyncio.run(touch())
    mode = sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"my precious notes\n" * 100)
    before = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(LedgerError, match="not an ingest ledger"):
        upgrade(url(path))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_someone_elses_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="other tables: invoices"):
        upgrade(url(path))
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    upgrade(url(path))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer than this ingest knows"):
        upgrade(url(path))
    assert path.read_bytes() == before


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        upgrade(url(tmp_path / "no" / "such" / "x.db"))


def facts(source: str, sha: str = "a" * 64, purpose: str = "song") -> SourceFacts:
    return SourceFacts(source=source, purpose=purpose, kind="file", size=10, mtime_ns=1, sha256=sha)


async def test_same_bytes_same_purpose_share_one_content(ledger: Ledger) -> None:
    first = await ledger.content_for("a" * 64, "song", 10)
    assert first[1:] == ("pending", False)
    again = await ledger.content_for("a" * 64, "song", 10)
    other_purpose = await ledger.content_for("a" * 64, "voice", 10)
    assert first == again and first[0] != other_purpose[0]


async def test_sources_take_their_status_and_ids_from_the_content(ledger: Ledger) -> None:
    run = await ledger.start_run(pid=1, host="h", command="c")
    content_id, _, _ = await ledger.content_for("a" * 64, "song", 10)
    for name in ("/x/one.wav", "/x/two.wav"):
        await ledger.record_source(facts(name), run_id=run, content_id=content_id)
    await ledger.record_source(facts("/x/bad.wav"), run_id=run, status="failed", error="empty")
    rows = {r["source"]: r async for r in ledger.export_rows()}
    assert [rows[n]["status"] for n in ("/x/one.wav", "/x/two.wav", "/x/bad.wav")] == [
        "pending",
        "pending",
        "failed",
    ]
    assert await ledger.mark_attempt(content_id) == 1
    await ledger.mark_done(content_id, voice_id="v1", instrumental_id="i1", trace_id="t")
    rows = {r["source"]: r async for r in ledger.export_rows("done")}
    assert set(rows) == {"/x/one.wav", "/x/two.wav"}
    assert all(
        (r["voice_id"], r["instrumental_id"], r["attempts"]) == ("v1", "i1", 1)
        for r in rows.values()
    )
    state = await ledger.find_source("/x/two.wav", "song")
    assert state is not None and state.effective_status() == "done"


async def test_a_purpose_given_later_replaces_the_no_purpose_failure(ledger: Ledger) -> None:
    run = await ledger.start_run(pid=1, host="h", command="c")
    await ledger.record_source(
        facts("/x/a.wav", purpose=""), run_id=run, status="failed", error="no purpose"
    )
    await ledger.record_source(facts("/x/a.wav", purpose="voice"), run_id=run)
    assert [r["purpose"] async for r in ledger.export_rows()] == ["voice"]


async def test_runs_are_recorded(ledger: Ledger) -> None:
    run = await ledger.start_run(pid=42, host="box", command="ingest run x")
    await ledger.finish_run(run, status="finished", exit_code=1, summary={"uploaded": 3})
    (last,) = await ledger.last_runs()
    assert (last["pid"], last["status"], last["exit_code"]) == (42, "finished", 1)


def test_db_current_reads_without_upgrading(tmp_path: Path) -> None:
    from pipeline.ledger.migrate import current

    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    assert current(url(path)) == (None, "0001")
    assert sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    upgrade(url(path))
    assert current(url(path)) == ("0001", "0001")
