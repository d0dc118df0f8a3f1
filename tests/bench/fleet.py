"""Fleet rows: several runs on one PostgreSQL ledger, the sandbox answering after 200 ms.

- one run at `--concurrency 8` beside three runs at `--concurrency 8` each, started together on
  the same folder (goal: the three take at most 0.4 of the one's time; the sandbox receives each
  content once);
- the three again, one killed with SIGKILL a third of the way in (once the sandbox has accepted
  a third of the files): the two left must finish everything within the lease plus the remaining
  work (what was left at the kill, at the pace two of the three runs kept in the row before),
  repeating at most what the killed run had in flight (its concurrency). The runs of this row use
  `--lease 15` rather than the default 60 s, to keep the bench short;
- the per-file ledger cost on PostgreSQL beside SQLite: the same catalogue with no latency,
  interleaved, the client's CPU and PostgreSQL's own (the postmaster's processes, counting the
  backends it reaped) per file.

Each run gets a fresh database on the server at `INGEST_TEST_PG` (an admin URL, default
`postgresql://postgres@127.0.0.1:5432/postgres`, as for the tests), dropped afterwards. Without a
server the rows say so and are not measured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.bench.context import Context
from tests.bench.harness import (
    INGEST,
    TICKS,
    Sample,
    Sandbox,
    ingest_env,
    ingest_run,
    interleaved,
    median,
    scaled,
    summary_count,
)
from tests.bench.table import Goal, line, section, skipped
from tests.pg import ADMIN_URL, admin, unreachable

LATENCY, CONCURRENCY, LEASE = 0.2, 8, 15


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh database with the ledger's tables; its URL for `--db`; dropped afterwards."""
    name = f"ingest_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        argv = [INGEST, "db", "upgrade", "--db", url]
        subprocess.run(argv, env=ingest_env(), check=True, stdout=subprocess.DEVNULL)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _start(tree: Path, db: str, sandbox: Sandbox, *extra: str) -> subprocess.Popen[bytes]:
    argv = [INGEST, "run", str(tree), "--db", db, "--api-url", sandbox.url, "--log-level", "error"]
    return subprocess.Popen(
        [*argv, "--concurrency", str(CONCURRENCY), *extra],
        env=ingest_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(run: subprocess.Popen[bytes]) -> None:
    _, stderr = run.communicate()
    if run.returncode != 0:
        raise RuntimeError(f"ingest run exited {run.returncode}: {stderr.decode()[-2000:]}")


def _sent(sandbox: Sandbox) -> collections.Counter[str]:
    """Accepted uploads per content."""
    return collections.Counter(r["sha256"] for r in sandbox.requests() if r["outcome"] == "ok")


def _done(db: str) -> int:
    argv = [INGEST, "export", "--status", "done", "--db", db]
    out = subprocess.run(argv, env=ingest_env(), check=True, capture_output=True).stdout
    return out.count(b"\n")


def _together(tree: Path, runs: int, *extra: str) -> tuple[float, collections.Counter[str], int]:
    """`runs` runs started together on one fresh ledger: seconds, uploads per content, done."""
    sandbox = Sandbox("--latency", f"{LATENCY:g}")
    try:
        with database() as db:
            started = time.perf_counter()
            for run in [_start(tree, db, sandbox, *extra) for _ in range(runs)]:
                _finish(run)
            seconds = time.perf_counter() - started
            return seconds, _sent(sandbox), _done(db)
    finally:
        sandbox.stop()


def fleet(ctx: Context) -> list[Goal]:
    files = scaled(3000, 600)
    work = f"{files:,} files, 200 ms latency: three runs at c {CONCURRENCY} on one PostgreSQL"
    section(work)
    goal = "<= 0.4 of one run's time; each content sent once"
    why = unreachable()
    if why:
        line(f"skipped: {why}")
        return [skipped(work, goal, why), *kill_row(ctx, None)]
    tree = ctx.tree(files)
    one, sent_one, _ = _together(tree, 1)
    three, sent, done = _together(tree, 3)
    once = len(sent) == files and set(sent.values()) == {1} and done == files
    line(f"one run {one:.1f} s; three runs {three:.1f} s: {three / one:.2f} of the time")
    line(f"three runs: {len(sent):,} contents accepted, {sum(sent.values()) - len(sent)} twice")
    ctx.notes["fleet pace"] = files / three  # files a second, three runs
    return [
        Goal(
            work,
            f"{three:.1f} s",
            f"one run {one:.1f} s",
            f"{three / one:.2f} of the time; {sum(sent.values()) - len(sent)} repeats",
            goal,
            three <= 0.4 * one and once and len(sent_one) == files,
        ),  # fmt: skip
        *kill_row(ctx, tree),
    ]


def kill_row(ctx: Context, tree: Path | None) -> list[Goal]:
    files = scaled(3000, 600)
    work = f"{files:,} files, three runs, one killed (-9) a third of the way in, --lease {LEASE}"
    goal = f"done within lease + remaining work; <= {CONCURRENCY} repeats"
    if tree is None:
        return [skipped(work, goal, "no PostgreSQL")]
    section(work)
    sandbox = Sandbox("--latency", f"{LATENCY:g}")
    try:
        with database() as db:
            runs = [_start(tree, db, sandbox, "--lease", str(LEASE)) for _ in range(3)]
            while len(_sent(sandbox)) < files // 3:
                time.sleep(0.2)
            runs[0].send_signal(signal.SIGKILL)
            runs[0].wait()
            killed_at, left = time.perf_counter(), files - len(_sent(sandbox))
            for run in runs[1:]:
                _finish(run)
            after = time.perf_counter() - killed_at
            sent, done = _sent(sandbox), _done(db)
    finally:
        sandbox.stop()
    pace = ctx.notes["fleet pace"] * 2 / 3  # what two runs keep up, from the row before
    bound = LEASE + left / pace
    repeats = sum(n - 1 for n in sent.values())
    line(
        f"killed with {left:,} files left; the two others ended {after:.1f} s later "
        f"(lease {LEASE} s + {left / pace:.1f} s of work = {bound:.1f} s); {repeats} repeats, "
        f"{done:,} of {files:,} done"
    )
    return [
        Goal(
            work, f"{after:.1f} s after the kill", f"lease + remaining work {bound:.1f} s",
            f"{repeats} repeats; {done:,} of {files:,} done", goal,
            after <= bound and repeats <= CONCURRENCY and done == files and len(sent) == files,
        )
    ]  # fmt: skip


def _postgres_cpu() -> float:
    """CPU seconds PostgreSQL's processes have used, counting the backends its postmaster reaped."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = raw[raw.index("(") + 1 : raw.rindex(")")], raw.rsplit(")", 1)[1].split()
        if name == "postgres":  # user + system, and (the postmaster) its reaped children's
            total += sum(int(f) for f in fields[11:15]) / TICKS
    return total


def ledger_cost(ctx: Context) -> list[Goal]:
    files = scaled(2000, 400)
    work = f"{files:,} files, no latency, c 32: ledger cost per file, PostgreSQL vs SQLite"
    section(work)
    why = unreachable()
    if why:
        line(f"skipped: {why}")
        return [skipped(work, "(kept for reference)", why)]
    tree, sandbox, server_cpu = ctx.tree(files), ctx.sandbox(0.0), collections.defaultdict(list)

    def sqlite(_: int) -> Sample:
        db = str(ctx.ledger("cost"))
        return ingest_run(str(tree), "--db", db, "--api-url", sandbox.url, "--concurrency", "32")

    def postgres(_: int) -> Sample:
        with database() as db:
            before = _postgres_cpu()
            sample = ingest_run(
                str(tree), "--db", db, "--api-url", sandbox.url, "--concurrency", "32"
            )
            server_cpu["postgres"].append(_postgres_cpu() - before)
        return sample

    results = interleaved({"SQLite": sqlite, "PostgreSQL": postgres}, budget=120)
    for name, runs in results.items():
        if summary_count(runs[0], "uploaded") != files:
            raise RuntimeError(f"{name}: uploaded {summary_count(runs[0], 'uploaded')} of {files}")
    lite, pg = median(results["SQLite"]), median(results["PostgreSQL"])
    lite_cpu, pg_cpu = median(results["SQLite"], "cpu"), median(results["PostgreSQL"], "cpu")
    server = sorted(server_cpu["postgres"])[len(server_cpu["postgres"]) // 2]
    per = 1000 / files
    line(
        f"SQLite {lite:.2f} s, client CPU {lite_cpu * per:.2f} ms/file; PostgreSQL {pg:.2f} s, "
        f"client CPU {pg_cpu * per:.2f} ms/file + server CPU {server * per:.2f} ms/file"
    )
    return [
        Goal(
            work,
            f"PostgreSQL {pg * per:.2f} ms/file wall; CPU {pg_cpu * per:.2f} + server "
            f"{server * per:.2f} ms/file",
            f"SQLite {lite * per:.2f} ms/file wall; CPU {lite_cpu * per:.2f} ms/file",
            f"{pg / lite:.2f}x the time",
            "(kept for reference)",
            None,
        )
    ]
