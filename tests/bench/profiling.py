"""Where ingest's time goes, on the two throughput rows and the rerun row of `make bench`.

    python -m tests.bench.profiling [OUT]     (default OUT: /tmp/bench-profiles)

For each scenario, `ingest run` is recorded by py-spy (100 samples/s, idle samples dropped, so a
thread's samples are its busy time) into `OUT/<scenario>.speedscope.json` (open it at
speedscope.app), then run again in-process under `counting.py` for what sampling cannot count:
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
from tests.bench.harness import INGEST, Sandbox, ingest_env, measure, scaled

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
RATE = 100
# Libraries counted anywhere on the main thread's stack ("inclusive"), by a piece of file path.
LIBRARIES = {
    "imports (start-up)": "<frozen importlib",
    "sqlalchemy": "/sqlalchemy/",
    "  of which greenlet bridge": "sqlalchemy/util/_concurrency",
    "aiosqlite": "/aiosqlite/",
    "alembic (migrations)": "/alembic/",
    "aiohttp": "/aiohttp/",
    "tenacity": "/tenacity/",
    "logging": "/logging/",
    "json": "/json/",
    "pipeline.ledger": "pipeline/ledger/",
    "pipeline.prepare": "pipeline/prepare.py",
    "pipeline.upload": "pipeline/upload.py",
    "pipeline.runner": "pipeline/runner.py",
    "pipeline.api": "pipeline/api.py",
    "pipeline.sources": "pipeline/sources/",
}


def _ensure_py_spy() -> None:
    """py-spy comes from PyPI (a wheel with the binary), into this venv, when missing."""
    if not Path(PY_SPY).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)


def record(out: Path, argv: list[str]) -> float:
    """py-spy on `argv` to the end; the wall seconds."""
    started = time.perf_counter()
    cmd = [PY_SPY, "record", "-r", str(RATE), "-f", "speedscope", "-o", str(out), "--", *argv]
    subprocess.run(cmd, env=ingest_env(), check=True, capture_output=True)
    return time.perf_counter() - started


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


def analyse(speedscope: Path, wall: float) -> str:
    doc = json.loads(speedscope.read_text())
    frames, profiles = doc["shared"]["frames"], doc["profiles"]
    main = max(profiles, key=lambda p: p["name"].endswith('""') or "MainThread" in p["name"])
    stacks = list(_stacks(main, frames))
    busy = len(stacks) / RATE
    lines = [f"wall {wall:.1f} s; event loop (main thread) busy {busy:.1f} s = {busy / wall:.0%}"]
    lines += _shares("self time by module", (_module(s[-1]) for s in stacks), len(stacks), 12)
    lines += _inclusive(stacks)
    lines += _shares("top functions (self)", (s[-1] for s in stacks), len(stacks), 15)
    lines.append("other threads (busy seconds):")
    groups: collections.Counter[str] = collections.Counter()
    for p in profiles:
        if p is not main:
            name = p["name"].split('"')[1] if '"' in p["name"] else p["name"]
            groups[name.rstrip("0123456789").rstrip("_") or name] += len(p["samples"]) / RATE
    lines += [f"    {n:<40}{s:7.1f} s" for n, s in groups.most_common(6)]
    return "\n".join(lines)


def _shares(title: str, keys: Iterator[str], total: int, top: int) -> list[str]:
    counts = collections.Counter(keys)
    return [f"{title}:"] + [f"    {n / total:5.1%}  {k}" for k, n in counts.most_common(top)]


def _inclusive(stacks: list[list[str]]) -> list[str]:
    lines = ["anywhere on the stack (inclusive):"]
    for name, marker in LIBRARIES.items():
        hits = sum(any(marker in frame for frame in stack) for stack in stacks)
        lines.append(f"    {hits / len(stacks):5.1%}  {name}")
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
    wall = record(out / f"{name}.speedscope.json", [INGEST, "run", *spied, "--log-level", "error"])
    report = [f"## {name}: {files:,} files", analyse(out / f"{name}.speedscope.json", wall)]
    if sandbox is not None:
        server = sandbox.cpu() - before
        report.append(f"sandbox CPU meanwhile: {server:.1f} s = {server / wall:.0%} of one core")
        if sandbox_spy is not None:
            sandbox_spy.send_signal(signal.SIGINT)
            sandbox_spy.wait(timeout=60)
    counted(out / f"{name}-counts.json", ["run", *count_db])
    report.append(counts_summary(out / f"{name}-counts.json", files))
    return "\n".join(report)


def _spy_on(sandbox: Sandbox, out: Path) -> subprocess.Popen[bytes] | None:
    if os.environ.get("BENCH_PROFILE_SANDBOX", "1") == "0":
        return None
    cmd = [PY_SPY, "record", "-r", str(RATE), "-f", "speedscope", "-o", str(out)]
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
        done, db = str(work / "done.db"), lambda name: str(work / f"{name}.db")
        latency = [str(trees[small]), "--api-url", slow.url, "--concurrency", "32"]
        floor = [str(trees[large]), "--api-url", fast.url, "--concurrency", "64"]
        reports = [
            scenario(out, "latency", small, latency, (db("a"), db("b")), slow),
            scenario(out, "floor", large, floor, (done, db("c")), fast),
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
