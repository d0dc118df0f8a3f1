"""Where ingest's time goes, on the two throughput rows and the rerun row of `make bench`.

    python -m tests.bench.profiling [OUT]     (default OUT: /tmp/bench-profiles)

For each scenario, `ingest run` is recorded by py-spy (100 samples/s, only samples holding the
GIL, so waiting in epoll or on a queue is not counted as work) into
`OUT/<scenario>.speedscope.json` (open it at speedscope.app), with each thread's CPU time read
from /proc meanwhile; then run again in-process under `counting.py` for what sampling cannot count:
thread hops, SQL statements and their latency, log records (`OUT/<scenario>-counts.json`). In the
no-latency scenario the sandbox is recorded too, to see whether it sets the pace. The summary
printed (and written to `OUT/summary.md`) gives, for ingest's main thread (the event loop): its
busy share of the wall time; the share of its busy time by module (self time) and by library
(anywhere on the stack); its top functions; and the worker threads' busy time.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.bench import data
from tests.bench.harness import INGEST, TICKS, Sandbox, ingest_env, measure, scaled

FRIENDLY = {
    "asyncio": "executor (to_thread: hash, probe, listing)",
    "": "executor (to_thread: hash, probe, listing)",  # the first one, named late
    "_connection_worker_thread": "aiosqlite connection",
}
PY_SPY = str(Path(sys.executable).with_name("py-spy"))
RATE = 100
# Libraries counted anywhere on the main thread's stack ("inclusive"), by a piece of file path.
LIBRARIES = {
    "imports (start-up)": "<frozen importlib",
    "sqlalchemy": "/sqlalchemy/",
    "  of which greenlet bridge": "sqlalchemy/util/concurrency",
    "aiosqlite": "/aiosqlite/",
    "alembic (migrations)": "/alembic/",
    "aiohttp": "/aiohttp/",
    "tenacity": "/tenacity/",
    "logging": "/logging/",
    "json": "/json/",
    "pipeline.ledger": "pipeline/ledger/",
    "  ledger writer's commits (Writer._loop)": "Writer._loop",
    "  batch lookups (Ledger.states)": "Ledger.states",
    "pipeline.run.prepare (triage, hash/probe hops, link)": "pipeline/run/prepare.py",
    "pipeline.run.upload (Sender.send)": "pipeline/run/upload.py",
    "  the request (ClientSession._request)": "ClientSession._request",
    "  the form (FormData)": "FormData",
    "pipeline.run.runner (queues, stop races)": "pipeline/run/runner.py",
    "pipeline.sources": "pipeline/sources/",
    "thread hops out (run_in_executor)": "run_in_executor",
}


def _ensure_py_spy() -> None:
    """py-spy comes from PyPI (a wheel with the binary), into this venv, when missing."""
    if not Path(PY_SPY).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)


def record(out: Path, argv: list[str]) -> tuple[float, dict[int, float]]:
    """py-spy on `argv` to the end: the wall seconds, and CPU seconds by thread id read from
    /proc while it ran (a thread's last reading counts; one that ends between two readings
    loses at most the 0.2 s between them)."""
    started = time.perf_counter()
    cmd = [PY_SPY, "record", "-r", str(RATE), "-g", "-f", "speedscope", "-o", str(out), "--"]
    spy = subprocess.Popen(
        [*cmd, *argv], env=ingest_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    threads: dict[int, float] = {}
    while spy.poll() is None:
        for child in _children(spy.pid):
            threads.update(_thread_cpu(child))
        time.sleep(0.2)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy exited {spy.returncode}")
    return time.perf_counter() - started, threads


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of `pid`, by thread id."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def _thread_names(profiles: list[dict[str, Any]]) -> dict[int, str]:
    """Thread id -> name group, from py-spy's profile names (`Thread 123 "asyncio_0"`); the
    first profile is the main thread."""
    names = {}
    for n, profile in enumerate(profiles):
        tid, _, rest = profile["name"].removeprefix("Thread ").partition(" ")
        name = rest.strip('"').split(" (")[-1].rstrip(")").rstrip("0123456789_")
        names[int(tid)] = "main (event loop)" if n == 0 else FRIENDLY.get(name, name)
    return names


def counted(out: Path, args: list[str]) -> None:
    argv = [sys.executable, "-m", "tests.bench.counting", str(out), *args, "--log-level", "error"]
    measure(argv, env=ingest_env())


def _stacks(profile: dict[str, Any], frames: list[dict[str, Any]]) -> Iterator[list[str]]:
    for sample in profile["samples"]:
        yield [f"{frames[i]['name']} ({frames[i]['file']}:{frames[i]['line']})" for i in sample]


def _module(frame: str) -> str:
    path = frame.rsplit("(", 1)[-1]
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1].split("/")[0].split(".py")[0]
    if "/pipeline/" in path:
        return "pipeline." + path.split("/pipeline/", 1)[1].split(".py")[0].replace("/", ".")
    return path.split(":")[0]


def analyse(speedscope: Path, wall: float, by_thread: dict[int, float]) -> str:
    doc = json.loads(speedscope.read_text())
    frames, profiles = doc["shared"]["frames"], doc["profiles"]
    main = profiles[0]  # py-spy lists the main thread first
    stacks = [s for s in _stacks(main, frames) if s]
    names = _thread_names(profiles)
    cpu: collections.defaultdict[str, float] = collections.defaultdict(float)
    for tid, seconds in by_thread.items():
        cpu[names.get(tid, "other threads")] += seconds
    loop = cpu.get("main (event loop)", 0.0)
    lines = [
        f"wall {wall:.1f} s; event loop (main thread) CPU {loop:.1f} s = {loop / wall:.0%} "
        f"of the wall time; {len(stacks) / RATE:.1f} s of it holding the GIL (sampled)"
    ]
    lines += ["CPU by thread (from /proc):"]
    lines += [f"    {n:<36}{s:7.1f} s" for n, s in sorted(cpu.items(), key=lambda kv: -kv[1])]
    lines.append("shares below: of the main thread's GIL-holding samples")
    lines += _shares("self time by module", (_module(s[-1]) for s in stacks), len(stacks), 12)
    lines += _inclusive(stacks)
    lines += _shares("top functions (self)", (s[-1] for s in stacks), len(stacks), 15)
    return "\n".join(lines)


def _sandbox_summary(speedscope: Path) -> str:
    doc = json.loads(speedscope.read_text())
    stacks = [s for s in _stacks(doc["profiles"][0], doc["shared"]["frames"]) if s]
    lines = _shares(
        "sandbox, self time by module", (_module(s[-1]) for s in stacks), len(stacks), 6
    )
    lines += _shares("sandbox, top functions (self)", (s[-1] for s in stacks), len(stacks), 6)
    return "\n".join(lines)


def _shares(title: str, keys: Iterator[str], total: int, top: int) -> list[str]:
    counts = collections.Counter(keys)
    return [f"{title}:"] + [f"    {n / total:5.1%}  {k}" for k, n in counts.most_common(top)]


def _inclusive(stacks: list[list[str]]) -> list[str]:
    lines = ["anywhere on the stack (inclusive):"]
    for name, marker in LIBRARIES.items():
        hits = sum(any(marker in frame for frame in stack) for stack in stacks)
        lines.append(f"    {hits / max(len(stacks), 1):5.1%}  {name}")
    return lines


def counts_summary(path: Path, files: int) -> str:
    c = json.loads(path.read_text())
    hops = sum(c["executor"].values())
    statements = sum(c["statements"].values())
    seconds = sum(c["statement_seconds"].values())
    lines = [
        f"per file: {hops / files:.2f} executor hops, {c['aiosqlite_calls'] / files:.2f} "
        f"aiosqlite calls, {statements / files:.2f} SQL statements, "
        f"{c['log_records'] / files:.2f} log records",
        f"SQL: {statements} statements, {seconds:.2f} s in all "
        f"({seconds / max(statements, 1) * 1000:.2f} ms each, hop and wait included):",
    ]
    by_time = sorted(c["statement_seconds"].items(), key=lambda kv: -kv[1])[:8]
    for kind, secs in by_time:
        n, rows = c["statements"][kind], c["statement_rows"][kind]
        lines.append(f"    {n:6} x {kind:<46} {rows:7} rows {secs:7.2f} s")
    lines.append(
        "executor hops by caller: " + ", ".join(f"{k} {v}" for k, v in c["executor"].items())
    )
    return "\n".join(lines)


def scenario(
    out: Path, name: str, files: int, args: list[str], dbs: tuple[str, str], sandbox: Sandbox | None
) -> str:
    """Record `ingest run ARGS --db dbs[0]`, then count `ingest run ARGS --db dbs[1]`."""
    spied, count_db = [*args, "--db", dbs[0]], [*args, "--db", dbs[1]]
    before = sandbox.cpu() if sandbox is not None else 0.0
    sandbox_spy = _spy_on(sandbox, out / f"sandbox-{name}.speedscope.json") if sandbox else None
    argv = [INGEST, "run", *spied, "--log-level", "error"]
    wall, cpu = record(out / f"{name}.speedscope.json", argv)
    report = [f"## {name}: {files:,} files", analyse(out / f"{name}.speedscope.json", wall, cpu)]
    if sandbox is not None:
        server = sandbox.cpu() - before
        report.append(f"sandbox CPU meanwhile: {server:.1f} s = {server / wall:.0%} of one core")
        if sandbox_spy is not None:
            sandbox_spy.send_signal(signal.SIGINT)
            sandbox_spy.wait(timeout=60)
            report.append(_sandbox_summary(out / f"sandbox-{name}.speedscope.json"))
    counted(out / f"{name}-counts.json", ["run", *count_db])
    report.append(counts_summary(out / f"{name}-counts.json", files))
    return "\n".join(report)


def _spy_on(sandbox: Sandbox, out: Path) -> subprocess.Popen[bytes] | None:
    if os.environ.get("BENCH_PROFILE_SANDBOX", "1") == "0":
        return None
    cmd = [PY_SPY, "record", "-r", str(RATE), "-g", "-f", "speedscope", "-o", str(out)]
    cmd += ["--pid", str(sandbox.process.pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "/tmp/bench-profiles")
    out.mkdir(parents=True, exist_ok=True)
    _ensure_py_spy()
    work = Path(tempfile.mkdtemp(prefix="ingest-profile-"))
    slow, fast = Sandbox("--latency", "0.1"), Sandbox("--latency", "0")
    try:
        small, large = scaled(2000, 200), scaled(8000, 800)
        pool = data.small_pool(work / "pool", large)
        trees = {n: data.link_tree(pool, work / f"tree-{n}", n) for n in (small, large)}
        done = str(work / "done.db")
        latency = [str(trees[small]), "--api-url", slow.url, "--concurrency", "32"]
        floor = [str(trees[large]), "--api-url", fast.url, "--concurrency", "64"]
        reports = [
            scenario(
                out, "latency", small, latency, (str(work / "a.db"), str(work / "b.db")), slow
            ),
            scenario(out, "floor", large, floor, (done, str(work / "c.db")), fast),
            scenario(out, "rerun", large, [str(trees[large])], (done, done), None),
        ]
    finally:
        slow.stop()
        fast.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = "\n\n".join(reports)
    (out / "summary.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
