"""Shared fixtures: a real sandbox server on loopback, a CLI runner, sample catalogues.

The aioresponses shim lives here, in one place: aioresponses 0.7.9 builds ClientResponse without
the `stream_writer` argument that aiohttp 3.14 requires (aioresponses issue #289, fix not
released). The subclass supplies a finished writer, which is all a mocked response needs.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse

from pipeline.sandbox.server import DEMO_KEY
from tests.netlab import TlsFiles
from tests.processes import stop_process


class _DoneWriter:
    output_size = 0


class _ShimmedClientResponse(ClientResponse):
    def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, stream_writer=stream_writer or _DoneWriter(), **kwargs)


aioresponses.core.ClientResponse = _ShimmedClientResponse  # type: ignore[misc]

# No AWS SDK in the tests (nor the CLI runs they start, which inherit it) may look for
# instance-metadata credentials: that lookup goes to an address off loopback.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
pytest_plugins = ["tests.s3server"]  # the `s3` fixture: moto's server on loopback


@dataclasses.dataclass
class SandboxServer:
    url: str  # the upload endpoint
    process: subprocess.Popen[str]
    log: Path
    ca: Path | None = None  # the CA that signed its certificate, when it serves HTTPS

    @property
    def base(self) -> str:
        return self.url.split("/v2/", 1)[0]

    def requests(self) -> list[dict[str, Any]]:
        context = None if self.ca is None else ssl.create_default_context(cafile=str(self.ca))
        url = f"{self.base}/_sandbox/requests"
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return list(json.load(resp))

    def accepted(self) -> collections.Counter[str]:
        """Uploads the sandbox accepted, per content (sha256)."""
        return collections.Counter(r["sha256"] for r in self.requests() if r["outcome"] == "ok")


def start_sandbox(
    tmp_path: Path, *flags: str, key: str = DEMO_KEY, tls: TlsFiles | None = None
) -> SandboxServer:
    """`ingest sandbox` on a free port; over HTTPS with `tls`'s certificate."""
    log = tmp_path / f"sandbox-{len(list(tmp_path.glob('sandbox-*.jsonl')))}.jsonl"
    if tls is not None:
        flags = (*flags, "--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--port", "0", "--log", str(log), *flags],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AIMLAPI_API_KEY": key},
    )
    assert process.stdout is not None
    banner = process.stdout.readline().strip()
    assert banner.startswith("sandbox listening on "), banner
    ca = None if tls is None else tls.ca
    return SandboxServer(url=banner.rsplit(" ", 1)[-1], process=process, log=log, ca=ca)


def stop_sandbox(server: SandboxServer) -> None:
    stop_process(server.process)
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (skipped without a server; see tests/pg.py)."""
    from tests.pg import fresh_database

    yield from fresh_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ledger on each backend: an SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "ingest.db")
    else:
        from tests.pg import fresh_database

        yield from fresh_database()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = start_sandbox(tmp_path)
    yield server
    stop_sandbox(server)


@dataclasses.dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        {
            "AIMLAPI_API_KEY": DEMO_KEY,
            "INGEST_BACKOFF_BASE": "0.05",
            "INGEST_BACKOFF_MAX": "0.5",
            "INGEST_PROGRESS": "never",
        }
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> CliResult:
    """`ingest ARGS` as a real subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def song_catalogue(root: Path, count: int, *, per_folder: int = 50) -> Path:
    """`count` small, distinct WAVs (10.5 s of 8-bit tone at 2 kHz) under root/song/dNN/."""
    from pipeline.sandbox.samples import write_wav

    for i in range(count):
        folder = root / "song" / f"d{i // per_folder}"
        write_wav(folder / f"t{i:04d}.wav", 10.5, seed=i, rate=2000)
    return root


def start_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`ingest ARGS` as a real subprocess, left running (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def export(
    cwd: Path, db: str = "ingest.db", env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    result = run_cli("export", "--db", db, cwd=cwd, env=env)
    assert result.code == 0, result.stderr
    # JSON lines end in "\n" only: a name may hold U+2028 or U+0085, which splitlines() splits on.
    return [json.loads(line) for line in result.stdout.split("\n") if line]
