"""Measuring one process from outside: wall time, CPU (its own and its reaped children's) and
peak RSS from `wait4`, and variants run interleaved (A, B, A, B, ...) so a noisy shared machine
hits each alike. Also the sandbox as a subprocess, whose CPU time is read from /proc.

Every command is started by a small launcher process (`python -S`, about 9 MB), which spawns it
and reports its `wait4` figures: a child spawned straight from this process would inherit this
process's own peak RSS into its `ru_maxrss` (the kernel keeps the larger of the two across exec),
and this process holds a file server and a large pool list. So peak RSS has a floor of about
9 MB, which only tiny tools like `find` come near.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.sandbox.server import DEMO_KEY
from tests.processes import stop_process

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if QUICK else "3"))
# Repetitions asked for by name are all run; by default a comparison stops repeating when the
# next round would take it past its time budget (ingest on main is slow, the machine is shared).
BUDGETED = "BENCH_REPEATS" not in os.environ
INGEST = str(Path(sys.executable).with_name("ingest"))  # the console script users run
TICKS = os.sysconf("SC_CLK_TCK")


# Spawns argv[2:], forwards SIGTERM to it, writes its wait4 figures as JSON to argv[1].
LAUNCHER = """
import json, os, signal, sys, time
started = time.perf_counter()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # held until it can be forwarded
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ, setsigmask=())
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump([seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
               os.waitstatus_to_exitcode(status)], out)
"""


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


def _launch(
    argv: Sequence[str], env: Mapping[str, str] | None, stdout: Any, stderr: Any, report: Path
) -> subprocess.Popen[bytes]:
    launcher = [sys.executable, "-S", "-c", LAUNCHER, str(report), *argv]
    return subprocess.Popen(launcher, env=env, stdout=stdout, stderr=stderr)


def _figures(report: Path, stdout: str, server: float) -> Sample:
    seconds, cpu, rss_kb, code = json.loads(report.read_text())
    return Sample(seconds, cpu, rss_kb / 1024, code, stdout, server)


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
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "out", "w+b") as out:
        report, err = Path(tmp) / "report", Path(tmp) / "err"
        with err.open("wb") as errors:
            sink = out if keep_stdout else subprocess.DEVNULL
            _launch(argv, env, sink, errors, report).wait()
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        server = sandbox.cpu() - server_before if sandbox is not None else 0.0
        sample = _figures(report, stdout, server)
        stderr = err.read_text(errors="replace")
    if check and sample.code != 0:
        raise RuntimeError(f"{argv[0]} exited {sample.code}: {stderr.strip()[-2000:]}")
    return sample


def count_lines(argv: Sequence[str], *, env: Mapping[str, str], window: float) -> Sample:
    """Run `argv` for at most `window` seconds, counting the lines it writes (in `stdout`); it
    is stopped if still running then (`code` is -15)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        started = time.perf_counter()
        proc = _launch(argv, env, subprocess.PIPE, subprocess.DEVNULL, report)
        assert proc.stdout is not None
        lines = 0
        while chunk := os.read(proc.stdout.fileno(), 1 << 20):
            lines += chunk.count(b"\n")
            if time.perf_counter() - started > window:
                proc.send_signal(signal.SIGTERM)
                break
        proc.stdout.close()
        proc.wait()
        return _figures(report, str(lines), 0.0)


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
    """`ingest sandbox` as a subprocess on a free loopback port; over HTTPS when its flags give
    a certificate, `ca` being the CA that signed it."""

    def __init__(self, *flags: str, ca: Path | None = None) -> None:
        self.ca = ca
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
        context = None if self.ca is None else ssl.create_default_context(cafile=str(self.ca))
        url = f"{base}/_sandbox/requests"
        with urllib.request.urlopen(url, timeout=60, context=context) as resp:
            return list(json.load(resp))

    def stop(self) -> None:
        stop_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
