"""The dry run of a manifest that names a few files on many rows (each row its own
`external_id`, so each row is its own record): what a row costs when it needs no upload.

Rows at two sizes run interleaved: 20,000 rows naming 30 files, and the same 30 files on 30
rows (the start-up alone); a row's cost is the difference over the extra rows, as the rerun
row subtracts start-up. Then 1,000,000 rows once (100,000 under BENCH_QUICK): wall time and
peak RSS. No ledger exists: the dry run makes, and throws away, an empty one of its own.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pipeline.sandbox.samples import write_noise_wav
from tests.bench import bigledger
from tests.bench.context import Context
from tests.bench.harness import (
    INGEST,
    Sample,
    ingest_env,
    interleaved,
    measure,
    median,
    scaled,
    summary_count,
)
from tests.bench.table import Goal, line, section

FILES = 30


def _manifest(folder: Path, rows: int) -> Path:
    """`rows` rows naming FILES small WAVs in turn, each with its own external_id."""
    for i in range(FILES):
        path = folder / f"f{i:03d}.wav"
        if not path.exists():
            write_noise_wav(path, 10.5, seed=i)
    names = ((f"f{i % FILES:03d}.wav", "song", f"e{i}") for i in range(rows))
    return bigledger.write_manifest(folder / f"m{rows}.csv", names)


def _dry(manifest: Path, rows: int, _round: int = 0) -> Sample:
    argv = [INGEST, "run", "--manifest", str(manifest), "--dry-run", "--log-level", "error"]
    argv += ["--db", str(manifest.parent / "none.db")]  # never created: a dry run reads only
    sample = measure(argv, env=ingest_env())
    if summary_count(sample, "entries seen") != rows:
        raise RuntimeError(f"the dry run saw {summary_count(sample, 'entries seen')} of {rows}")
    return sample


def dry_run(ctx: Context) -> list[Goal]:
    rows, million = scaled(20000, 2000), scaled(1_000_000, 100_000)
    section(f"--dry-run of manifests naming {FILES} files: {FILES} and {rows:,} rows; {million:,}")
    folder = ctx.work / "dry"
    folder.mkdir()
    small, large = _manifest(folder, FILES), _manifest(folder, rows)
    results = interleaved(
        {
            f"{FILES} rows": functools.partial(_dry, small, FILES),
            f"{rows} rows": functools.partial(_dry, large, rows),
        },
        budget=scaled(240, 60),
    )
    start, whole = median(results[f"{FILES} rows"]), median(results[f"{rows} rows"])
    cpu = median(results[f"{rows} rows"], "cpu") - median(results[f"{FILES} rows"], "cpu")
    extra = rows - FILES
    rate = extra / (whole - start) if whole > start else None  # None: lost in the noise
    shown = "within the noise" if rate is None else f"{rate:,.0f} rows/s"
    line(
        f"{FILES} rows {start:.2f} s; {rows:,} rows {whole:.2f} s: {shown} beyond start-up "
        f"(CPU {cpu / extra * 1e6:.0f} us a row); {rows / whole:,.0f} rows/s whole"
    )
    big = _dry(_manifest(folder, million), million)
    line(
        f"{million:,} rows: {big.seconds:.1f} s, CPU {big.cpu:.1f} s, peak RSS {big.rss_mb:.1f} MB"
    )
    return [
        Goal(
            f"--dry-run of a {rows:,}-row manifest naming {FILES} files",
            f"{shown} (CPU {cpu / extra * 1e6:.0f} us a row)",
            f"start-up ({FILES} rows) {start:.2f} s; whole run {whole:.2f} s",
            f"{rows / whole:,.0f} rows/s with start-up",
            ">= 20,000 rows/s (start-up subtracted)",
            None if rate is None else rate >= 20_000,
        ),
        Goal(
            f"--dry-run of a {million:,}-row manifest naming {FILES} files",
            f"{big.seconds:.1f} s; {big.rss_mb:.1f} MB",
            "-",
            "-",
            "< 60 s and < 150 MB peak RSS",
            big.seconds < 60 and big.rss_mb < 150,
        ),
    ]
