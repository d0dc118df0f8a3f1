"""`make demo`: a sample catalogue ingested into the local sandbox, start to finish.

1. generate `.demo/catalogue` (real WAV and MP3 files in song/voice/instrumental folders, a
   duplicate, bad files, cover art);
2. start `ingest sandbox` on a free loopback port, with a few injected faults so retries show;
3. `ingest run` the catalogue (exit 1 expected: the bad files fail), then `ingest status`;
4. run again: nothing is uploaded, exit 0.
Everything runs as real subprocesses, exactly as a user would type it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.sandbox.samples import make_catalogue
from pipeline.sandbox.server import DEMO_KEY

ROOT = Path(".demo")


def _ingest(*args: str, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "pipeline", *args]
    print(f"\n$ ingest {' '.join(args)}", flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def main() -> int:
    shutil.rmtree(ROOT, ignore_errors=True)
    counts = make_catalogue(ROOT / "catalogue", per_purpose=6)
    print(
        f"catalogue: {counts['good']} good files, {counts['duplicates']} duplicate, "
        f"{counts['bad']} bad files, plus cover art and a cue sheet, in {ROOT / 'catalogue'}"
    )
    env = {
        **os.environ,
        "AIMLAPI_API_KEY": DEMO_KEY,
        "INGEST_BACKOFF_BASE": "0.2",
        "INGEST_PROGRESS": "never",
    }
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "sandbox",
            "--port",
            "0",
            "--error-rate",
            "0.1",
            "--busy-rate",
            "0.1",
            "--retry-after",
            "0.2",
            "--seed",
            "7",
            "--log",
            str(ROOT / "sandbox.jsonl"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert sandbox.stdout is not None
        banner = sandbox.stdout.readline().strip()
        print(banner)
        url = banner.rsplit(" ", 1)[-1]
        db = str(ROOT / "ingest.db")
        first = _ingest("run", str(ROOT / "catalogue"), "--db", db, "--api-url", url, env=env)
        _ingest("status", "--db", db, env=env)
        second = _ingest(
            "run",
            str(ROOT / "catalogue"),
            "--db",
            db,
            "--api-url",
            url,
            "--log-level",
            "warning",
            env=env,
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    print(
        f"\nfirst run exited {first} (1: the bad files failed for good, as expected); "
        f"second run exited {second} (0: nothing left to do, nothing sent)."
    )
    print(f"ledger: {ROOT / 'ingest.db'}; export it with: ingest export --db {ROOT / 'ingest.db'}")
    return 0 if (first, second) == (1, 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
