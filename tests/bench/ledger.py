"""Ledger and manifest rows.

- start-up: `ingest --help` and `ingest status` on an empty ledger, by hyperfine (a loop of runs
  when hyperfine cannot be had);
- a 1,000,000-entry ledger (see `bigledger.py`): `ingest status` time and `ingest export` (JSON
  lines to /dev/null) rows per second, interleaved;
- a 1,000,000-row manifest, run against that ledger: peak RSS;
- a manifest naming the same file on many rows (each with its own external_id, so each row is
  its own record): how many times ingest reads the whole file, counted from outside with strace
  (`-ff -y`: every read of that path, per thread). The file is 200 KB, under ingest's 256 KB
  in-memory limit, so its upload sends the very bytes hashed and every whole read is a hash;
  the probe's reads are partial. The sandbox's request list counts the uploads.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pipeline.sandbox.samples import write_noise_wav
from tests.bench import bigledger, references
from tests.bench.context import Context
from tests.bench.harness import (
    INGEST,
    Sample,
    count_lines,
    ingest_env,
    interleaved,
    measure,
    median,
    scaled,
    summary_count,
)
from tests.bench.table import Goal, line, section, skipped
from tests.fileserver import FileServer

NEW_ROWS = 1000  # manifest rows not in the ledger yet: fetched and uploaded for real


def startup(ctx: Context) -> list[Goal]:
    section("start-up")
    empty = ctx.ledger("empty")
    measure([INGEST, "db", "upgrade", "--db", str(empty)], env=ingest_env())
    commands = {"ingest --help": [INGEST, "--help"]}
    commands["ingest status (empty ledger)"] = [INGEST, "status", "--db", str(empty)]
    times = _hyperfine(ctx, commands)
    if times is None:
        loops = interleaved({n: functools.partial(_run, a) for n, a in commands.items()}, 10)
        times = {name: median(runs) for name, runs in loops.items()}
    goals = []
    for name, seconds in times.items():
        line(f"{name:<30}{seconds * 1000:8.0f} ms (median)")
        goals.append(Goal(name, f"{seconds:.3f} s", "-", "-", "< 0.3 s", seconds < 0.3))
    return goals


def _run(argv: list[str], _round: int) -> Sample:
    return measure(argv, env=ingest_env())


def _hyperfine(ctx: Context, commands: dict[str, list[str]]) -> dict[str, float] | None:
    """Median seconds by command, or None (said why) when hyperfine cannot be had or fails."""
    why = references.tool("hyperfine")
    if why:
        line(f"skipped hyperfine: {why}; timing a loop of 10 runs instead")
        return None
    out = ctx.work / "hyperfine.json"
    argv = ["hyperfine", "-N", "--warmup", "1", "--runs", str(scaled(5, 3)), "--style", "none"]
    argv += ["--export-json", str(out)]
    for name, command in commands.items():
        argv += ["-n", name, " ".join(command)]
    done = subprocess.run(argv, env=ingest_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        line(f"hyperfine failed ({done.stderr.strip()[-200:]}); timing a loop of 10 runs instead")
        return None
    results = json.loads(out.read_text())["results"]
    return {r["command"]: float(r["median"]) for r in results}


def million(ctx: Context) -> list[Goal]:
    total = scaled(1_000_000, 100_000)
    section(f"a ledger of {total:,} entries; a manifest of {total:,} rows")
    served = ctx.work / "served"
    served.mkdir()
    for i, source in enumerate(ctx.pool[: NEW_ROWS + 1]):
        (served / (f"new{i:07d}.wav" if i < NEW_ROWS else "seed.wav")).hardlink_to(source)
    with FileServer(served) as files:
        db = _build(ctx, files.base, total)
        goals = _status_export(db, total)
        goals.append(_manifest(ctx, db, files.base, total))
    return goals


def _build(ctx: Context, base: str, total: int) -> Path:
    sandbox = ctx.sandbox(0.0)
    seed = bigledger.write_manifest(
        ctx.work / "seed.csv",
        iter([(f"{base}/files/seed.wav", "song", ""), (f"{base}/missing", "song", "")]),
    )
    db = ctx.ledger("million")
    argv = [INGEST, "run", "--manifest", str(seed), "--db", str(db), "--api-url", sandbox.url]
    sample = measure(argv, env=ingest_env(), check=False)
    if sample.code != 1:  # 1: a row failed (the missing one), as it should
        raise RuntimeError(f"the seed run exited {sample.code}: {sample.stdout}")
    bigledger.fill(db, base, total)
    line(f"built: ingest made the schema and 2 rows; {total:,} rows bulk-inserted beside them")
    return db


def _status_export(db: Path, total: int) -> list[Goal]:
    window = scaled(30, 20)
    results = interleaved(
        {
            "status": lambda _: measure([INGEST, "status", "--db", str(db)], env=ingest_env()),
            "export": lambda _: count_lines(
                [INGEST, "export", "--db", str(db)], env=ingest_env(), window=window
            ),
        },
        budget=scaled(90, 60),
    )
    status, export = median(results["status"]), median(results["export"])
    rows = int(statistics.median(int(s.stdout) for s in results["export"]))
    rate = rows / export
    cut = f" (cut at {window} s)" if rows < total else ""
    line(f"status {status:.2f} s; export {rows:,} rows in {export:.1f} s{cut} = {rate:,.0f} rows/s")
    line(
        f"peak RSS: status {median(results['status'], 'rss_mb'):.1f} MB, "
        f"export {median(results['export'], 'rss_mb'):.1f} MB"
    )
    return [
        Goal(
            f"ingest status, {total:,}-entry ledger",
            f"{status:.2f} s",
            "-",
            "-",
            "< 2 s",
            status < 2,
        ),
        Goal(
            f"ingest export, {total:,}-entry ledger",
            f"{rate:,.0f} rows/s",
            f"{rows:,} rows in {export:.1f} s{cut}",
            "-",
            ">= 100,000 rows/s",
            rate >= 100_000,
        ),
    ]


def _million_rows(base: str, total: int) -> Iterator[tuple[str, str, str]]:
    """The ledger's sources in order, but for every `total // NEW_ROWS`-th row a new URL, so a
    run cut short by its time cap still meets new work all along."""
    every, new = total // NEW_ROWS, 0
    for i in range(total):
        if i % every == every - 1 and new < NEW_ROWS:
            yield f"{base}/files/new{new:07d}.wav", "song", ""
            new += 1
        else:
            yield bigledger.url(base, i), "song", ""


def _manifest(ctx: Context, db: Path, base: str, total: int) -> Goal:
    manifest = bigledger.write_manifest(ctx.work / "million.csv", _million_rows(base, total))
    sandbox, cap = ctx.sandbox(0.0), scaled(120, 60)
    argv = [INGEST, "run", "--manifest", str(manifest), "--db", str(db), "--api-url", sandbox.url]
    argv += ["--concurrency", "16", "--max-duration", f"{cap}s", "--log-level", "error"]
    sample = measure(argv, env=ingest_env(), sandbox=sandbox, check=False)
    if sample.code not in (0, 4):  # 4: the time cap stopped it with rows left
        raise RuntimeError(f"the manifest run exited {sample.code}: {sample.stdout}")
    seen = summary_count(sample, "entries seen")
    cut = f"; cut by --max-duration {cap}s after {seen:,} rows" if sample.code == 4 else ""
    line(
        f"manifest run: {sample.seconds:.1f} s ({seen / sample.seconds:,.0f} rows/s), "
        f"uploaded {summary_count(sample, 'uploaded')}, "
        f"skipped as done {summary_count(sample, 'skipped, done'):,}, "
        f"peak RSS {sample.rss_mb:.1f} MB{cut}"
    )
    work = f"{total:,}-row manifest ({NEW_ROWS:,} new rows spread, the rest done)"
    reference = f"{seen:,} rows read in {sample.seconds:.0f} s{cut}"
    return Goal(
        work, f"{sample.rss_mb:.1f} MB", reference, "-", "< 150 MB peak RSS", sample.rss_mb < 150
    )


def hashed_once(ctx: Context) -> list[Goal]:
    rows = scaled(2000, 500)
    work = f"manifest naming one file on {rows:,} rows"
    section(work)
    goal = "hashed once per run"
    why = references.tool("strace")
    if why:
        line(f"skipped: {why}")
        return [skipped(work, goal, why)]
    same = write_noise_wav(ctx.work / "same" / "same.wav", 100, seed=424242)  # 200 KB
    manifest = bigledger.write_manifest(
        ctx.work / "same" / "same.csv", iter([("same.wav", "song", f"e{i}") for i in range(rows)])
    )
    sandbox = ctx.sandbox(0.0)
    before = len(sandbox.requests())
    trace = ctx.work / "same" / "strace"  # -ff: one file per thread, so no call is split
    argv = ["strace", "-ff", "-qq", "-y", "-e", "trace=openat,read,pread64", "-o", str(trace)]
    argv += [INGEST, "run", "--manifest", str(manifest), "--db", str(ctx.ledger("same"))]
    argv += ["--api-url", sandbox.url, "--log-level", "error"]
    measure(argv, env=ingest_env())
    uploads = len(sandbox.requests()) - before
    opens, reads, whole = _file_io(trace, same)
    size = same.stat().st_size
    line(
        f"{rows:,} rows: the file was opened {opens:,} times, read whole {whole:,} times "
        f"({reads / size:,.1f}x its size in all); the sandbox got {uploads} upload(s)"
    )
    return [
        Goal(
            work,
            f"read whole {whole:,} times",
            f"{uploads} upload(s) received",
            "-",
            goal,
            whole == 1,
        )
    ]


def _file_io(trace: Path, path: Path) -> tuple[int, int, int]:
    """(opens, bytes read, reads of the whole file at once) of `path` in the strace -y -ff logs
    `trace.<tid>`."""
    name, size = str(path.resolve()), path.stat().st_size
    opens = reads = whole = 0
    read = re.compile(r"\b(?:read|pread64)\(\d+<" + re.escape(name) + r">.*\) = (\d+)$")
    logs = trace.parent.glob(f"{trace.name}.*")
    for text in itertools.chain.from_iterable(
        log.read_text(errors="replace").splitlines() for log in logs
    ):
        if "openat(" in text and f'"{name}"' in text and "= -1" not in text:
            opens += 1
        elif match := read.search(text):
            got = int(match.group(1))
            reads += got
            whole += got == size
    return opens, reads, whole
