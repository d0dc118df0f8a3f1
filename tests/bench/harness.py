"""Measuring one process from outside: wall time, CPU (its own and its reaped children's) and
peak RSS from `wait4`, and variants run interleaved (A, B, A, B, ...) so a noisy shared machine
hits each alike. Also the sandbox as a subprocess, whose CPU time is read from /proc.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.sandbox import DEMO_KEY

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if QUICK else "3"))
# Repetitions asked for by name are all run; by default a comparison stops repeating when the
# next round would take it past its time budget (ingest on main is slow, the machine is shared).
BUDGETED = "BENCH_REPEATS" not in os.environ
INGEST = str(Path(sys.executable).with_name("ingest"))  # the console script users run
TICKS = os.sysconf("SC_CLK_TCK")


def scaled(full: int, quick: int) -> int:
    """A work size: `full` normally, `quick` under BENCH_QUICK=1."""
    return quick if QUICK else full


@dataclasses.dataclass(frozen=True)
class Sample:
    """One finished process."""

    seconds: float
    cpu: float  # user + system seconds, children included
    rss_mb: float  # peak resident set
    code: int
    stdout: str
    server_cpu: float = 0.0  # CPU seconds the sandbox spent meanwhile, when there was one


def ingest_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update({"AIMLAPI_API_KEY": DEMO_KEY, "INGEST_PROGRESS": "never"}, **extra)
    return env


def measure(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
    check: bool = True,
    keep_stdout: bool = True,
) -> Sample:
    """Run `argv` to the end; stdout is kept (or sent to /dev/null), stderr shown if it fails."""
    server_before = sandbox.cpu() if sandbox is not None else 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        sink = out if keep_stdout else subprocess.DEVNULL
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if check and code != 0:
        raise RuntimeError(f"{argv[0]} exited {code}: {stderr.strip()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    server = sandbox.cpu() - server_before if sandbox is not None else 0.0
    return Sample(elapsed, cpu, usage.ru_maxrss / 1024, code, stdout, server)


def count_lines(argv: Sequence[str], *, env: Mapping[str, str], window: float) -> Sample:
    """Run `argv` for at most `window` seconds, counting the lines it writes (in `stdout`); it
    is stopped if still running then (`code` is -15)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = 0
    os.set_blocking(proc.stdout.fileno(), True)
    while chunk := proc.stdout.read1(1 << 20):
        lines += chunk.count(b"\n")
        if time.perf_counter() - started > window:
            proc.terminate()
            break
    elapsed = time.perf_counter() - started
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(elapsed, cpu, usage.ru_maxrss / 1024, code, str(lines))


def ingest_run(*args: str, sandbox: Sandbox | None = None, **env: str) -> Sample:
    """`ingest run ARGS` logging errors only, as a cron job would run it."""
    argv = [INGEST, "run", *args, "--log-level", "error"]
    return measure(argv, env=ingest_env(**env), sandbox=sandbox)


def summary_count(sample: Sample, label: str) -> int:
    """A count from the run summary, e.g. `uploaded` or `skipped, done`."""
    for line in sample.stdout.splitlines():
        if line.strip().startswith(label):
            return int(line.strip()[len(label) :].split()[0])
    raise ValueError(f"no {label!r} line in the summary:\n{sample.stdout}")


def interleaved(
    variants: Mapping[str, Callable[[int], Sample]],
    repeats: int = REPEATS,
    *,
    budget: float | None = None,
) -> dict[str, list[Sample]]:
    """Each variant `repeats` times, in turn: A, B, A, B, ... (the argument is the round). With
    a `budget` in seconds, no round starts that would likely end past it (one always runs)."""
    results: dict[str, list[Sample]] = {name: [] for name in variants}
    started = time.monotonic()
    for rep in range(repeats):
        spent = time.monotonic() - started
        if rep and BUDGETED and budget is not None and spent * (rep + 1) / rep > budget:
            print(
                f"   ({rep} of {repeats} rounds: another would pass this row's {budget:.0f} s "
                "budget; BENCH_REPEATS=N runs them all)",
                flush=True,
            )
            break
        for name, run in variants.items():
            results[name].append(run(rep))
    return results


def median(samples: Sequence[Sample], field: str = "seconds") -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


class Sandbox:
    """`ingest sandbox` as a subprocess on a free loopback port."""

    def __init__(self, *flags: str) -> None:
        self.process = subprocess.Popen(
            [INGEST, "sandbox", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "AIMLAPI_API_KEY": DEMO_KEY},
        )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline().strip()
        if not banner.startswith("sandbox listening on "):
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {banner!r}")
        self.url = banner.rsplit(" ", 1)[-1]

    def cpu(self) -> float:
        """CPU seconds the sandbox has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def requests(self) -> list[dict[str, Any]]:
        base = self.url.split("/v2/", 1)[0]
        with urllib.request.urlopen(f"{base}/_sandbox/requests", timeout=60) as resp:
            return list(json.load(resp))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
