"""The reference tools ingest is measured beside, and how each is run.

- `curl` through `xargs -P N`: one curl per file, posting the multipart form ingest posts;
- the bare aiohttp loop (`tests/bench/bare.py`): the floor for a Python client;
- ingest's own hash-and-send path with nothing else (`tests/bench/send_only.py`): the most a
  client of this design (aiohttp, each file's hash known) can reach on big files;
- `rclone copy` to a local mirror that is already up to date (size + modtime check), and
  `find -printf` over the tree: what looking at every file of an unchanged catalogue costs;
- `hyperfine` for start-up times.

A tool that is missing is installed with `apt-get install -y` when that is possible (root and
apt-get here); otherwise `tool()` says why, and the row that needs it prints one line saying
which reference was skipped and why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.sandbox.server import DEMO_KEY
from tests.bench.harness import Sample, Sandbox, measure

PACKAGES = {"curl": "curl", "xargs": "findutils", "find": "findutils", "rclone": "rclone"}
PACKAGES |= {"hyperfine": "hyperfine", "strace": "strace"}
PACKAGES |= {"sox": "sox", "flac": "flac", "ffmpeg": "ffmpeg", "squid": "squid"}


@functools.cache
def tool(name: str) -> str | None:
    """None when `name` is on PATH (installed now if need be), else why it is not."""
    if shutil.which(name):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{name} is not installed and apt-get cannot install it here (not root)"
    print(f"   installing {name} with apt-get ...", flush=True)
    _apt_update()
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", PACKAGES.get(name, name)],
        capture_output=True,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )
    if shutil.which(name):
        return None
    return f"{name}: apt-get install failed: {(result.stderr or result.stdout).strip()[-200:]}"


@functools.cache
def _apt_update() -> None:
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)


def curl_xargs(
    url: str,
    listing: Path,
    concurrency: int,
    sandbox: Sandbox,
    env: Mapping[str, str] | None = None,
) -> Sample:
    """One `curl` per file, `concurrency` at once; fails unless every upload succeeded. `env`:
    its environment (curl reads `http_proxy` there), the test's by default."""
    curl = [
        "curl",
        "-sS",
        "-H",
        f"Authorization: Bearer {DEMO_KEY}",
        "-F",
        "purpose=song",
        "-F",
        "file=@{};type=audio/wav",
        "-w",
        "\\n",
        url,
    ]
    argv = ["xargs", "-a", str(listing), "-P", str(concurrency), "-I{}", *curl]
    sample = measure(argv, sandbox=sandbox, env=env)
    wanted = len(listing.read_text().splitlines())
    ok = sample.stdout.count('"status_code": 0')
    if ok != wanted:
        raise RuntimeError(f"curl: {ok} of {wanted} uploads succeeded")
    return sample


def bare_loop(url: str, listing: Path, concurrency: int, sandbox: Sandbox) -> Sample:
    argv = [sys.executable, "-m", "tests.bench.bare", url, str(concurrency), str(listing)]
    return measure(argv, env={**os.environ, "AIMLAPI_API_KEY": DEMO_KEY}, sandbox=sandbox)


def send_only(url: str, listing: Path, concurrency: int, sandbox: Sandbox) -> Sample:
    argv = [sys.executable, "-m", "tests.bench.send_only", url, str(concurrency), str(listing)]
    return measure(argv, env={**os.environ, "AIMLAPI_API_KEY": DEMO_KEY}, sandbox=sandbox)


def rclone_copy(tree: Path, mirror: Path, config: Path) -> Sample:
    """`rclone copy` with its defaults (size + modtime, 8 checkers)."""
    return measure(["rclone", "--config", str(config), "copy", str(tree), str(mirror)])


def find_printf(tree: Path) -> Sample:
    return measure(["find", str(tree), "-type", "f", "-printf", "%p %s %T@\\n"])
