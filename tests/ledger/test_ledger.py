"""The ledger on a real SQLite file: migrations, refusals, the batched writer, derived status."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from pipeline.core.errors import LedgerError, LedgerWriteError
from pipeline.core.records import UploadResult
from pipeline.core.states import RunStatus, SourceStatus
from pipeline.ledger import export as ledger_export
from pipeline.ledger import open_ledger
from pipeline.ledger.figures import read_async
from pipeline.ledger.migrate import current, upgrade
from pipeline.ledger.models import metadata
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.writer import Writer


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[RunLedger]:
    """A ledger on each backend (SQLite file, fresh PostgreSQL database)."""
    ledger = await open_ledger(ledger_url)
    yield ledger
    await ledger.close()


@pytest.fixture
async def writer(ledger: RunLedger) -> AsyncIterator[Writer]:
    run_id = await ledger.start_run(pid=1, host="h", command="c")
    writer = Writer.for_ledger(ledger, run_id, patience=600.0)  # as a run builds it
    async with writer.running():
        yield writer


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    asyncio.run(upgrade(str(tmp_path / "a.db")))
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
    engine.dispose()


async def test_the_schema_revision_constant_is_the_newest_migration(tmp_path: Path) -> None:
    from pipeline.ledger.models import SCHEMA_REVISION

    assert (await current(str(tmp_path / "r.db")))[1] == SCHEMA_REVISION


async def test_ledger_uses_wal(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "w.db"))
    await ledger.start_run(pid=1, host="h", command="c")
    await ledger.close()
    mode = sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"my precious notes\n" * 100)
    before = path.read_bytes(), path.stat().st_mtime_ns
    with pytest.raises(LedgerError, match="not an ingest ledger"):
        asyncio.run(upgrade(str(path)))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


async def opened(path: str) -> str:
    """What a run does: open the ledger (checked, created or upgraded), then close it."""
    await (await open_ledger(path)).close()
    return path


OPENERS = pytest.mark.parametrize("opener", [upgrade, opened], ids=["db upgrade", "a run"])


@OPENERS
def test_someone_elses_sqlite_database_is_refused_untouched(tmp_path: Path, opener: Any) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="other tables: invoices"):
        asyncio.run(opener(str(path)))
    assert path.read_bytes() == before


@OPENERS
def test_a_newer_schema_is_refused_untouched(tmp_path: Path, opener: Any) -> None:
    path = tmp_path / "new.db"
    asyncio.run(upgrade(str(path)))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer than this ingest knows"):
        asyncio.run(opener(str(path)))
    assert path.read_bytes() == before


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        asyncio.run(upgrade(str(tmp_path / "no" / "such" / "x.db")))


def test_a_half_created_ledger_of_ours_is_built_again(tmp_path: Path) -> None:
    """What an older ingest left when killed while creating its tables: some of them, and an
    empty version table."""
    path = tmp_path / "half.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("CREATE TABLE contents (id INTEGER PRIMARY KEY)")
    assert asyncio.run(upgrade(str(path))) == asyncio.run(current(str(path)))[1]
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"contents", "sources", "runs", "alembic_version"} <= tables


def test_tables_of_ours_holding_rows_without_a_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO runs VALUES (1)")
    with pytest.raises(LedgerError, match="no schema version"):
        asyncio.run(upgrade(str(path)))


def test_db_current_reads_without_upgrading(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    at, head = asyncio.run(current(str(path)))
    assert at is None
    assert sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    asyncio.run(upgrade(str(path)))
    assert asyncio.run(current(str(path))) == (head, head)


def facts(source: str, purpose: str = "song") -> SourceFacts:
    return SourceFacts(source=source, purpose=purpose, kind="file", size=10, mtime_ns=1)


async def test_same_bytes_same_purpose_share_one_content(writer: Writer) -> None:
    first = await writer.link(facts("/x/a.wav"), sha256="a" * 64, size=10)
    again = await writer.link(facts("/x/b.wav"), sha256="a" * 64, size=10)
    other = await writer.link(facts("/x/c.wav", "voice"), sha256="a" * 64, size=10)
    assert (first.status, first.retryable) == ("pending", False)
    assert first.content_id == again.content_id != other.content_id


async def test_links_queued_together_are_committed_together(writer: Writer) -> None:
    links = await asyncio.gather(
        *(writer.link(facts(f"/x/{i}.wav"), sha256=f"{i % 3:064d}", size=1) for i in range(30))
    )
    assert len({link.content_id for link in links}) == 3


async def test_sources_take_their_status_and_ids_from_the_content(
    ledger: RunLedger, writer: Writer
) -> None:
    link = await writer.link(facts("/x/one.wav"), sha256="a" * 64, size=10)
    await writer.link(facts("/x/two.wav"), sha256="a" * 64, size=10)
    writer.record_source(facts("/x/bad.wav"), status=SourceStatus.FAILED, error="empty")
    await writer.flush()
    rows = {r["source"]: r async for r in ledger_export.records(ledger)}
    assert [rows[n]["status"] for n in ("/x/one.wav", "/x/two.wav", "/x/bad.wav")] == [
        "pending",
        "pending",
        "failed",
    ]
    writer.attempt(link.content_id)
    await writer.done(link.content_id, UploadResult("v1", "i1", "t"))
    rows = {r["source"]: r async for r in ledger_export.records(ledger, "done")}
    assert set(rows) == {"/x/one.wav", "/x/two.wav"}
    assert all(
        (r["voice_id"], r["instrumental_id"], r["attempts"], r["trace_id"]) == ("v1", "i1", 1, "t")
        for r in rows.values()
    )
    states = await ledger.states(["/x/two.wav"])
    assert states[("/x/two.wav", "song")].effective_status() == "done"


async def test_a_failure_keeps_its_trace_id(ledger: RunLedger, writer: Writer) -> None:
    link = await writer.link(facts("/x/one.wav"), sha256="a" * 64, size=10)
    await writer.failed(link.content_id, "base_resp 2013: bad", trace_id="tr-1", retryable=False)
    (row,) = [r async for r in ledger_export.records(ledger)]
    assert (row["status"], row["trace_id"], row["error"]) == (
        "failed",
        "tr-1",
        "base_resp 2013: bad",
    )


async def test_a_purpose_given_later_replaces_the_no_purpose_failure(
    ledger: RunLedger, writer: Writer
) -> None:
    writer.record_source(facts("/x/a.wav", purpose=""), status=SourceStatus.FAILED, error="no")
    await writer.flush()
    later = dataclasses.replace(facts("/x/a.wav", purpose="voice"), replaces_no_purpose=True)
    writer.record_source(later)
    await writer.flush()
    assert [r["purpose"] async for r in ledger_export.records(ledger)] == ["voice"]


async def test_runs_are_recorded(ledger: RunLedger) -> None:
    from pipeline.core.states import RunStatus

    run = await ledger.start_run(pid=42, host="box", command="ingest run x")
    await ledger.finish_run(run, status=RunStatus.FINISHED, exit_code=1, summary={"uploaded": 3})
    (last, *_) = (await read_async(ledger)).runs
    assert (last["pid"], last["status"], last["exit_code"]) == (42, "finished", 1)


async def test_a_ledger_that_cannot_be_written_fails_every_waiting_change(
    tmp_path: Path,
) -> None:
    ledger = await open_ledger(str(tmp_path / "ingest.db"))
    writer = Writer.for_ledger(ledger, 1, patience=600.0)
    async with writer.running():
        await _fail_under_a_held_lock(tmp_path, writer)
    await ledger.close()


async def _fail_under_a_held_lock(tmp_path: Path, writer: Writer) -> None:
    failures: list[Exception] = []
    writer.on_failure = failures.append
    link = await writer.link(facts("/x/one.wav"), sha256="a" * 64, size=10)
    holder = sqlite3.connect(tmp_path / "ingest.db", timeout=0.1)
    holder.execute("BEGIN EXCLUSIVE")  # the writer's next commit cannot get the file
    try:
        with pytest.raises(LedgerError, match="cannot be written: database is locked"):
            await asyncio.wait_for(writer.done(link.content_id, UploadResult("v", "i", None)), 30)
    finally:
        holder.rollback()
        holder.close()
    assert failures and writer.failure is failures[0]
    with pytest.raises(LedgerError):
        writer.attempt(link.content_id)


async def test_a_claim_never_waits_for_another_run_s_row_lock(pg_url: str) -> None:
    """Three runs walking one folder claimed the same rows in their own orders and deadlocked
    every few seconds (PostgreSQL needs 1 s to see each deadlock): a claim of a row another
    run's open transaction holds now says "not ours" at once, and a free row is still taken."""
    from sqlalchemy import update

    from pipeline.ledger.claims import Claims
    from pipeline.ledger.models import sources

    ledger = await open_ledger(pg_url)
    first = await ledger.start_run(pid=1, host="h", command="c")
    second = await ledger.start_run(pid=2, host="h", command="c")
    mine, theirs = Claims("postgresql", first, 60.0), Claims("postgresql", second, 60.0)
    rows = [
        {"source": f"/cat/{name}.wav", "purpose": "song", "kind": "file", "written": "x",
         "status": "ok", "retryable": 0, "origin": "/cat", "created_at": 0.0, "updated_at": 0.0}
        for name in ("a", "b")
    ]  # fmt: skip
    async with ledger.engine.connect() as holder, ledger.engine.connect() as other:
        async with holder.begin():
            assert await holder.run_sync(mine.sources, rows) == {
                ("/cat/a.wav", "song"),
                ("/cat/b.wav", "song"),
            }
        await holder.begin()
        released = update(sources).where(sources.c.source == "/cat/b.wav")
        await holder.execute(released.values(claimed_by=None, claimed_until=None))  # free, locked
        async with other.begin():
            got = await asyncio.wait_for(other.run_sync(theirs.sources, rows), timeout=0.5)
        assert got == set()  # a: held by the first run; b: free but locked by its transaction
        await holder.commit()
        async with other.begin():
            got = await asyncio.wait_for(other.run_sync(theirs.sources, rows), timeout=0.5)
        assert got == {("/cat/b.wav", "song")}
    await ledger.close()


async def test_how_a_run_ended_that_cannot_be_recorded_is_a_ledger_write_error(
    tmp_path: Path,
) -> None:
    """The ledger says why in its own error type; no database exception leaves it."""
    ledger = await open_ledger(str(tmp_path / "ingest.db"))
    run_id = await ledger.start_run(pid=1, host="h", command="c")
    with sqlite3.connect(tmp_path / "ingest.db") as other:  # the table is gone under the run
        other.execute("ALTER TABLE runs RENAME TO runs_gone")
    try:
        with pytest.raises(LedgerWriteError, match="cannot be written: no such table: runs"):
            await ledger.finish_run(run_id, status=RunStatus.FINISHED, exit_code=0, summary={})
        with pytest.raises(LedgerWriteError, match="cannot be written: no such table: runs"):
            await ledger.start_run(pid=1, host="h", command="c")
        with pytest.raises(LedgerWriteError, match="cannot be written: no such table: runs"):
            await ledger.close_abandoned_runs()
    finally:
        await ledger.close()
        await ledger.close()  # closing again does nothing


async def test_a_ledger_file_that_cannot_be_read_is_a_ledger_write_error(tmp_path: Path) -> None:
    ledger = await open_ledger(str(tmp_path / "ingest.db"))
    with sqlite3.connect(tmp_path / "ingest.db") as other:
        other.execute("ALTER TABLE sources RENAME TO sources_gone")
        other.execute("ALTER TABLE contents RENAME TO contents_gone")
    try:
        with pytest.raises(LedgerWriteError, match="cannot be read: no such table: sources"):
            await ledger.states_patiently(["/x/a.wav"], patience=60.0)
        with pytest.raises(LedgerWriteError, match="cannot be read: no such table: contents"):
            await ledger.content_of("a" * 64, "song")
    finally:
        await ledger.close()


async def test_states_are_found_by_any_name_a_file_may_have(ledger: RunLedger) -> None:
    """On SQLite the keys go as one JSON list: names beyond ASCII, and beyond the Basic
    Multilingual Plane, are found as they were written."""
    run_id = await ledger.start_run(pid=1, host="h", command="c")
    names = ["/x/plain.wav", "/x/café.wav", "/x/🎵 song.wav", '/x/"quoted".wav']
    writer = Writer.for_ledger(ledger, run_id, patience=60.0)
    async with writer.running():
        for i, name in enumerate(names):
            await writer.link(facts(name), sha256=f"{i:064d}", size=10)
    found = await ledger.states([*names, "/x/never.wav"])
    assert set(found) == {(name, "song") for name in names}


async def test_a_fault_in_a_commit_fails_every_waiting_change_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.ledger.statements import SqliteStatements

    ledger = await open_ledger(str(tmp_path / "ingest.db"))
    writer = Writer.for_ledger(
        ledger, await ledger.start_run(pid=1, host="h", command="c"), patience=60.0
    )

    def broken(*_: Any) -> Any:
        raise ValueError("a statement for other keys")

    monkeypatch.setattr(SqliteStatements, "apply", broken)
    async with writer.running():
        with pytest.raises(LedgerWriteError, match="ValueError: a statement for other keys"):
            await asyncio.wait_for(writer.link(facts("/x/a.wav"), sha256="a" * 64, size=1), 30)
    await ledger.close()


async def test_a_heartbeat_records_the_figures_by_the_databases_clock(
    ledger: RunLedger, writer: Writer
) -> None:
    """One heartbeat for both back ends: the run's figures so far and the database's time."""
    before = time.time()
    assert await writer.heartbeat('{"uploaded": 3}') == 1  # this run, alone on the ledger
    figures = await read_async(ledger)
    now, (run,) = figures.now, figures.running
    assert run["summary"] == '{"uploaded": 3}'
    assert before - 5 <= run["heartbeat_at"] <= now + 1


async def test_a_backlog_is_committed_in_order_in_groups_of_bounded_size(tmp_path: Path) -> None:
    from pipeline.ledger.writer import GROUP_MAX

    ledger = await open_ledger(str(tmp_path / "g.db"))
    try:
        run_id = await ledger.start_run(pid=1, host="h", command="c")
        writer = Writer.for_ledger(ledger, run_id, patience=60.0)
        sizes = _commit_sizes(writer)
        async with writer.running():
            for i in range(2 * GROUP_MAX + 100):  # queued before the writer's first commit
                writer.record_source(facts(f"/x/{i:05d}.wav"))
            writer.record_source(facts("/x/00000.wav"), status=SourceStatus.FAILED, error="last")
            await writer.flush()
        assert sizes[:3] == [GROUP_MAX, GROUP_MAX, 102]  # 100 more, the update, the flush
        rows = [r async for r in ledger_export.records(ledger)]
        assert len(rows) == 2 * GROUP_MAX + 100
        assert rows[0]["error"] == "last"  # applied after the first insert of that row
    finally:
        await ledger.close()


@pytest.mark.parametrize("busy", [True, False], ids=["busy loop", "idle loop"])
async def test_a_commit_waits_for_more_changes_only_while_the_loop_is_busy(
    tmp_path: Path, busy: bool
) -> None:
    """Busy (every pass through the loop counts as slow here), a change that comes within the
    window shares the commit of the one before it; idle, the first is committed at once."""
    from pipeline.ledger.writer import Gather

    ledger = await open_ledger(str(tmp_path / "w.db"))
    try:
        run_id = await ledger.start_run(pid=1, host="h", command="c")
        gather = Gather(window=0.5, busy_pass=0.0 if busy else 60.0)
        writer = Writer.for_ledger(ledger, run_id, patience=60.0, gather=gather)
        sizes = _commit_sizes(writer)
        async with writer.running():
            writer.record_source(facts("/x/a.wav"))
            await asyncio.sleep(0.05)  # well within the window, long after an idle commit
            writer.record_source(facts("/x/b.wav"))
            await writer.flush()
        assert sizes[0] == (3 if busy else 1)  # a, b and the flush; or a alone
        rows = [r async for r in ledger_export.records(ledger)]
        assert sorted(r["source"] for r in rows) == ["/x/a.wav", "/x/b.wav"]
    finally:
        await ledger.close()


def _commit_sizes(writer: Writer) -> list[int]:
    """The size of each batch `writer` commits from now on, in order."""
    sizes: list[int] = []
    commit = writer._committer.commit

    async def counted(batch: Any) -> Any:
        sizes.append(len(batch))
        return await commit(batch)

    writer._committer.commit = counted  # type: ignore[method-assign]
    return sizes
