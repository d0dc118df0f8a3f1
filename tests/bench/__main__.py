"""Run every section in order, then print the table of goals (see the package docstring)."""

from __future__ import annotations

import compileall
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench import (
    buckets,
    catalogue,
    decoding,
    dry,
    fleet,
    flow,
    ledger,
    network,
    probing,
    throughput,
)
from tests.bench.context import Context
from tests.bench.harness import QUICK, REPEATS, scaled
from tests.bench.table import Goal, render

Section = Callable[[Context], list[Goal]]
SECTIONS: list[Section] = [
    ledger.startup,
    throughput.latency_row,
    throughput.floor_row,
    catalogue.memory_and_rerun,
    throughput.big_row,
    ledger.million,
    ledger.hashed_once,
    dry.dry_run,
    probing.probe_cost,
    flow.noisy,
    flow.rate_limit,
    flow.in_flight_limit,
    network.proxy_row,
    network.https_row,
    fleet.fleet,
    fleet.ledger_cost,
    buckets.bucket_upload,
    buckets.bucket_rerun,
    buckets.bucket_memory,
    decoding.convert_speed,
    decoding.gil_share,
    decoding.convert_memory,
]


def main(names: list[str]) -> int:
    """Every section, or only those named (e.g. `python -m tests.bench noisy fleet`)."""
    chosen = [run for run in SECTIONS if not names or run.__name__ in names]
    unknown = set(names) - {run.__name__ for run in SECTIONS}
    if unknown:
        print(
            f"no such section: {', '.join(sorted(unknown))}; the sections: "
            + ", ".join(run.__name__ for run in SECTIONS),
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    compile_ingest()
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    ctx = Context(work)
    mode = "quick (BENCH_QUICK=1)" if QUICK else "full"
    print(f"ingest benchmarks, {mode}, {REPEATS} repetition(s), {os.cpu_count()} cores, in {work}")
    goals: list[Goal] = []
    try:
        try:
            if not names:
                ctx.tree(scaled(20000, 2000))  # the pool of small files, made once up front
            for run in chosen:
                goals += run(ctx)
        finally:
            ctx.close()
        minutes = (time.monotonic() - started) / 60
        print(
            f"\n{len(goals)} goals in {minutes:.1f} min; load average now "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
        )
        print(render(goals), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def compile_ingest() -> None:
    """Ingest's bytecode, as pip compiles it when it installs a package. An editable install
    has none, and where PYTHONDONTWRITEBYTECODE is set (this machine sets it) it is never
    written: every run would compile ingest's modules again (60 ms of each start-up here),
    which no installed ingest does. Stale files are compiled again by their timestamps."""
    import pipeline

    compileall.compile_dir(Path(pipeline.__file__).parent, quiet=1)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
