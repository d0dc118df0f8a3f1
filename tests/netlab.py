"""The network a user's host may have, on loopback: a real proxy and a CA of our own.

- `tinyproxy(...)`: Debian's tinyproxy, started in the foreground (`-d`) from a config of ours on
  a free port, with its own log file; `Tinyproxy.requests()` reads the request lines it logged
  (`CONNECT host:port` for a tunnel, `POST http://...` for plain HTTP), which prove a request
  went through it. `.ci/run` installs it; without it the tests that need it are skipped.
- `make_ca(folder)`: a certificate authority made by trustme, and a server certificate from it
  for 127.0.0.1, localhost and ::1, written as PEM files for `ingest sandbox --tls-cert` and
  `ingest run --ca-bundle`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import stop_process

TINYPROXY = shutil.which("tinyproxy")
needs_tinyproxy = pytest.mark.skipif(
    TINYPROXY is None, reason="tinyproxy is not installed (apt-get install tinyproxy)"
)
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+ \S+) HTTP/1\.[01]")


@dataclasses.dataclass
class Tinyproxy:
    port: int
    log: Path
    user: str | None = None
    password: str | None = None
    pid: int = 0

    def cpu(self) -> float:
        """CPU seconds the proxy has used so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def url(self) -> str:
        """The proxy's URL, with its credentials when it asks for them."""
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines the proxy received, in order: `CONNECT 127.0.0.1:443`,
        `POST http://127.0.0.1:8/upload`."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return _REQUEST.findall(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(
    port: int, process: subprocess.Popen[bytes], timeout: float = 10.0, name: str = "tinyproxy"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise RuntimeError(f"{name} is not listening on {port} after {timeout:g} s")


@contextlib.contextmanager
def tinyproxy(
    folder: Path, *, auth: tuple[str, str] | None = None, connect_ports: tuple[int, ...] = ()
) -> Iterator[Tinyproxy]:
    """tinyproxy on a free loopback port for the length of the block. `auth`: the user and
    password it asks for (Basic); `connect_ports`: the only ports it tunnels to (all if none)."""
    assert TINYPROXY is not None
    folder.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), folder / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        f'LogFile "{log}"',
        "LogLevel Connect",  # a line per request, written at once
        "MaxClients 200",
        "Allow 127.0.0.1",
    ]  # no User line: it keeps running as us, and can write a test's folder
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    lines += [f"ConnectPort {p}" for p in connect_ports]
    config = folder / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        [TINYPROXY, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(port, process)
        user, password = auth or (None, None)
        yield Tinyproxy(port, log, user, password, process.pid)
    finally:
        stop_process(process)


@contextlib.contextmanager
def squid() -> Iterator[str]:
    """Squid on a free loopback port for the length of the block, no cache, tunnelling to any
    port; yields its URL. Started as root it runs as the `proxy` user, so its files go in a
    folder of its own under the system's temporary folder, open to it. (tinyproxy relays a
    CONNECT tunnel through a small buffer, and each request a kept connection carries through
    it stalls for tens of milliseconds; Squid's tunnels do not.)"""
    exe = shutil.which("squid") or "/usr/sbin/squid"
    folder = Path(tempfile.mkdtemp(prefix="ingest-squid-"))
    folder.chmod(0o777)
    port = free_port()
    config = folder / "squid.conf"
    config.write_text(
        "\n".join(
            [
                f"http_port 127.0.0.1:{port}",
                f"pid_filename {folder / 'squid.pid'}",
                "cache deny all",
                f"access_log stdio:{folder / 'access.log'}",
                f"cache_log {folder / 'cache.log'}",
                "cache_store_log none",
                f"coredump_dir {folder}",
                "http_access allow localhost",
                "http_access deny all",
                "shutdown_lifetime 1 seconds",
            ]
        )
        + "\n"
    )
    process = subprocess.Popen(
        [exe, "-N", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(port, process, timeout=30.0, name="squid")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA's certificate: what a client is told to trust
    cert: Path  # the server's certificate chain
    key: Path  # the server's private key


def make_ca(folder: Path, *names: str) -> TlsFiles:
    """A new CA, and a server certificate from it for `names` (default: 127.0.0.1, localhost
    and ::1), as PEM files in `folder`."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(*(names or ("127.0.0.1", "localhost", "::1")))
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as out:
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())
    return files
