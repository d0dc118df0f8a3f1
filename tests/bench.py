"""`make bench`: throughput and memory of `ingest run` against the local sandbox.

Every number comes from the real CLI as a subprocess over loopback, with a fresh ledger per
repetition. Variants that are compared run interleaved in the same loop (A, B, A, B, ...) so a
noisy shared machine hits both alike; medians and ratios are printed side by side.

    1. concurrency: 1 vs 8 upload workers, 300 files, sandbox answering after 20 ms;
    2. memory vs file size: peak RSS with 20 files of 22 KB, 13 MB and 53 MB;
    3. memory vs catalogue size: peak RSS with 500 vs 2,000 files;
    4. rerun: a rerun of 2,000 finished files (nothing to send) vs the first run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.samples import write_noise_wav
from pipeline.sandbox import DEMO_KEY

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def catalogue(
    root: Path, count: int, *, seconds: float = 10.5, rate: int = 2000, channels: int = 1
) -> Path:
    for i in range(count):
        write_noise_wav(
            root / "song" / f"d{i // 500}" / f"t{i:05d}.wav",
            seconds,
            seed=i,
            rate=rate,
            channels=channels,
        )
    return root


def run_ingest(folder: Path, db: Path, url: str, *extra: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one `ingest run`."""
    env = {**os.environ, "AIMLAPI_API_KEY": DEMO_KEY, "INGEST_PROGRESS": "never"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(folder),
            "--db",
            str(db),
            "--api-url",
            url,
            "--log-level",
            "error",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr is not None:
        proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def interleaved(
    variants: dict[str, Callable[[int], tuple[float, float, int]]],
) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for rep in range(REPEATS):
        for name, fn in variants.items():
            seconds, rss, code = fn(rep)
            assert code == 0, f"{name}: ingest exited {code}"
            results[name].append((seconds, rss))
    return results


def report(title: str, results: dict[str, list[tuple[float, float]]], *, per: int = 0) -> None:
    print(f"\n{title}  (median of {REPEATS}, interleaved)")
    medians = {}
    for name, runs in results.items():
        secs = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        medians[name] = (secs, rss)
        rate = f"{per / secs:8.1f} files/s" if per else ""
        print(f"  {name:<24}{secs:8.2f} s {rss:8.1f} MB peak RSS  {rate}")
    (a, (sa, ra)), *others = list(medians.items())
    for b, (sb, rb) in others:
        print(f"  ratio {b} / {a}: time {sb / sa:.2f}x, peak RSS {rb / ra:.2f}x")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--port", "0", "--latency", "0.02"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AIMLAPI_API_KEY": DEMO_KEY},
    )
    try:
        assert sandbox.stdout is not None
        url = sandbox.stdout.readline().strip().rsplit(" ", 1)[-1]
        print(f"ingest benchmarks on {os.cpu_count()} cores; sandbox at {url}")
        small = catalogue(work / "small", 300)
        report(
            "1. concurrency, 300 files of 22 KB",
            interleaved(
                {
                    "concurrency 1": lambda r: run_ingest(
                        small, work / f"c1-{r}.db", url, "--concurrency", "1"
                    ),
                    "concurrency 8": lambda r: run_ingest(
                        small, work / f"c8-{r}.db", url, "--concurrency", "8"
                    ),
                }
            ),
            per=300,
        )
        tiny = catalogue(work / "tiny", 20)
        mid = catalogue(work / "mid", 20, seconds=300, rate=44100, channels=1)
        big = catalogue(work / "big", 20, seconds=300, rate=44100, channels=4)
        report(
            "2. memory vs file size, 20 files",
            interleaved(
                {
                    "22 KB files": lambda r: run_ingest(tiny, work / f"t-{r}.db", url),
                    "13 MB files": lambda r: run_ingest(mid, work / f"i-{r}.db", url),
                    "53 MB files": lambda r: run_ingest(big, work / f"b-{r}.db", url),
                }
            ),
        )
        shutil.rmtree(big)
        shutil.rmtree(mid)
        many = catalogue(work / "many", 2000)
        few = work / "few"
        shutil.copytree(many / "song" / "d0", few / "song" / "d0")
        report(
            "3. memory vs catalogue size",
            interleaved(
                {
                    "500 files": lambda r: run_ingest(few, work / f"f-{r}.db", url),
                    "2,000 files": lambda r: run_ingest(many, work / f"m-{r}.db", url),
                }
            ),
        )
        report(
            "4. rerun with nothing to send, 2,000 files",
            interleaved(
                {
                    "first run": lambda r: run_ingest(many, work / f"r-{r}.db", url),
                    "rerun": lambda r: run_ingest(many, work / f"r-{r}.db", url),
                }
            ),
            per=2000,
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
