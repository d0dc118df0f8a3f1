"""The crawl's shortcut on a rerun: what it may leave out, and that any trouble reading the
ledger makes it leave nothing out (and create nothing)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.records import UploadResult
from pipeline.ledger import open_ledger
from pipeline.ledger.rows import SourceFacts
from pipeline.ledger.unchanged import UnchangedFiles
from pipeline.ledger.writer import Writer

SECOND = 10**9


async def ledger_with(db: Path, done: list[str], pending: list[str]) -> None:
    """Sources of 10 bytes, mtime 5 s, recorded song: `done` ones done, `pending` ones not."""
    ledger = await open_ledger(str(db))
    try:
        run_id = await ledger.start_run(pid=1, host="h", command="c")
        async with Writer.for_ledger(ledger, run_id, patience=60.0).running() as writer:
            for i, source in enumerate(done + pending):
                sha = f"{i:064d}"
                facts = SourceFacts(
                    source, "song", "file", size=10, mtime_ns=5 * SECOND, sha256=sha
                )
                link = await writer.link(facts, sha256=sha, size=10)
                if source in done:
                    await writer.done(link.content_id, UploadResult("v", None, "t"))
    finally:
        await ledger.close()


async def test_only_done_sources_of_that_purpose_unchanged_since_are_left_out(
    tmp_path: Path,
) -> None:
    db = tmp_path / "l.db"
    await ledger_with(db, done=["/c/a", "/c/b", "/c/touched"], pending=["/c/p"])
    unchanged = UnchangedFiles(db)
    try:
        listed = [
            ("/c/a", 10, 5 * SECOND),
            ("/c/b", 10, 5 * SECOND),
            ("/c/touched", 10, 6 * SECOND),
            ("/c/p", 10, 5 * SECOND),
            ("/c/new", 10, 5 * SECOND),
        ]
        assert unchanged.done("song", listed) == {"/c/a", "/c/b"}
        assert unchanged.done("voice", listed) == set()
        assert unchanged.done("", listed) == set()  # no purpose: the usual way fails it
    finally:
        unchanged.close()


async def test_files_younger_than_min_age_are_left_to_the_usual_way(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    await ledger_with(db, done=["/c/a"], pending=[])
    young = UnchangedFiles(db, min_age_ns=2 * SECOND, clock_ns=lambda: 6 * SECOND)
    old = UnchangedFiles(db, min_age_ns=2 * SECOND, clock_ns=lambda: 8 * SECOND)
    try:
        assert young.done("song", [("/c/a", 10, 5 * SECOND)]) == set()
        assert old.done("song", [("/c/a", 10, 5 * SECOND)]) == {"/c/a"}
    finally:
        young.close()
        old.close()


def test_a_ledger_gone_or_unreadable_leaves_nothing_out_and_is_not_created(
    tmp_path: Path,
) -> None:
    gone, garbage = tmp_path / "gone.db", tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    for path in (gone, garbage):
        unchanged = UnchangedFiles(path)
        try:
            assert unchanged.done("song", [("/c/a", 10, 5)]) == set()
        finally:
            unchanged.close()
    assert not gone.exists()
