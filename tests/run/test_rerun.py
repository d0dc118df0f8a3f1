"""A rerun over an SQLite ledger leaves done, unchanged files out of the crawl itself (one
ledger read per listing, no entry made): it must come to exactly what the usual way comes to."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.core.stop import Stop
from pipeline.flow.backoff import RetryPolicy
from pipeline.flow.breaker import Breaker
from pipeline.flow.throttle import Throttle
from pipeline.ledger import export as ledger_export
from pipeline.ledger import open_ledger
from pipeline.ledger.unchanged import UnchangedFiles
from pipeline.ledger.writer import Writer
from pipeline.run.plan import Policy
from pipeline.run.prepare import Preparer
from pipeline.run.runner import Runner
from pipeline.run.tally import Tally
from pipeline.run.upload import Sender
from pipeline.sandbox.samples import write_wav
from pipeline.sources.folder import walk_folder
from tests.run.test_runner import ScriptedUploader


async def run(root: Path, db: Path, *, fast: bool) -> tuple[dict[str, Any], dict[str, str], int]:
    """One run over `root`: its figures, every source's status after it, and how many files
    the crawl left out itself."""
    ledger = await open_ledger(str(db))
    tally, stop, left_out = Tally(), Stop(), [0]

    def skipped(count: int) -> None:
        left_out[0] += count
        tally.count_unchanged(count)

    unchanged = UnchangedFiles(db, on_skipped=skipped) if fast else None
    try:
        writer = Writer.for_ledger(
            ledger, await ledger.start_run(pid=1, host="h", command="t"), patience=60.0
        )
        async with writer.running():
            sender = Sender(
                uploader=ScriptedUploader(),
                writer=writer,
                throttle=Throttle(rate=None, max_in_flight=3),
                breaker=Breaker(max_outage=30),
                policy=RetryPolicy(max_attempts=2, base=0.001, cap=0.001),
                stop=stop,
                tally=tally,
            )
            preparer = Preparer(
                ledger=ledger,
                writer=writer,
                fetcher=None,
                tally=tally,
                policy=Policy(),
                patience=60,
            )
            batches = walk_folder(root, purpose=None, stats=tally.crawl, unchanged=unchanged)
            runner = Runner(
                batches=batches, preparer=preparer, sender=sender, stop=stop, concurrency=3, grace=5
            )
            await runner.run()
        records = {Path(r["source"]).name: r["status"] async for r in ledger_export.records(ledger)}
    finally:
        if unchanged is not None:
            unchanged.close()
        await ledger.close()
    return tally.as_dict(0.0), records, left_out[0]


def copy(db: Path, to: Path) -> Path:
    with sqlite3.connect(db) as source, sqlite3.connect(to) as target:
        source.backup(target)
    source.close()
    target.close()
    return to


async def test_a_rerun_comes_to_the_same_with_and_without_the_crawl_s_shortcut(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cat"
    for seed, name in enumerate(("a", "b", "touched", "changed")):
        write_wav(root / "song" / f"{name}.wav", 11, seed=seed)
    (root / "song" / "bad.wav").write_bytes(b"not audio at all" * 100)  # failed for good
    write_wav(root / "other" / "nopurpose.wav", 11, seed=9)  # failed: no purpose
    first = tmp_path / "first.db"
    figures, records, _ = await run(root, first, fast=False)
    assert (figures["uploaded"], figures["failed"]) == (4, 2)
    assert records["bad.wav"] == records["nopurpose.wav"] == "failed"
    stat = (root / "song" / "touched.wav").stat()
    os.utime(root / "song" / "touched.wav", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    write_wav(root / "song" / "changed.wav", 11, seed=99)  # new bytes: a new upload
    write_wav(root / "song" / "new.wav", 11, seed=42)

    usual = await run(root, copy(first, tmp_path / "usual.db"), fast=False)
    shortcut = await run(root, copy(first, tmp_path / "fast.db"), fast=True)
    assert shortcut[0] == usual[0]  # every figure of the run
    assert shortcut[1] == usual[1]  # and every source's status after it
    assert (usual[2], shortcut[2]) == (0, 2)  # a.wav and b.wav, not even made entries of
    assert usual[0]["skipped_done"] == 2 and usual[0]["skipped_failed"] == 2
    assert (usual[0]["uploaded"], usual[0]["deduplicated"]) == (2, 1)  # changed + new; touched
