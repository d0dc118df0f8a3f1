"""End to end: the network a user's host has. The real CLI through a real proxy (tinyproxy, whose
own log shows what went through it), to the sandbox over HTTPS with a certificate from a CA made
here, and to URLs that never answer; the proxy's password and the key never shown."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_wav
from pipeline.sandbox.server import DEMO_KEY
from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    free_port,
    run_cli,
    song_catalogue,
    start_sandbox,
    stop_sandbox,
)
from tests.fileserver import FileServer
from tests.netlab import TlsFiles, make_ca, needs_tinyproxy, tinyproxy

pytestmark = pytest.mark.e2e

PASSWORD = "s3cr3t-proxy-pw"
AUTH = ("ingest", PASSWORD)


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_ca(tmp_path / "tls")


@pytest.fixture
def servers() -> list[SandboxServer]:
    started: list[SandboxServer] = []
    yield started  # type: ignore[misc]
    for server in started:
        stop_sandbox(server)


def nowhere_shown(secret: str, tmp_path: Path, *outputs: str) -> None:
    """`secret` is in no output, no export and nowhere in the ledger's file."""
    for text in outputs:
        assert secret not in text
    assert secret not in str(export(tmp_path))
    for ledger in tmp_path.glob("ingest.db*"):  # the WAL too, if one is left
        assert secret.encode() not in ledger.read_bytes()


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@needs_tinyproxy
def test_plain_http_goes_through_http_proxy_as_curl_reads_it(
    tmp_path: Path, servers: list[SandboxServer]
) -> None:
    song_catalogue(tmp_path / "cat", 30)
    server = start_sandbox(tmp_path)
    servers.append(server)
    with tinyproxy(tmp_path / "proxy", auth=AUTH) as proxy:
        # Upper-case HTTP_PROXY is never read for http:// URLs (httpoxy), as curl does not.
        ignored = cli_env(HTTP_PROXY=f"http://127.0.0.1:{free_port()}")
        first = run_cli(
            "run", "cat", "--api-url", server.url, "--db", "a.db", cwd=tmp_path, env=ignored
        )
        direct = list(proxy.requests())
        env = cli_env(http_proxy=proxy.url)
        result = run_cli("run", "cat", "--api-url", server.url, "-v", cwd=tmp_path, env=env)
        through = proxy.requests()
    assert first.code == 0, first.stderr
    assert direct == []
    assert result.code == 0, result.stderr
    assert len(server.accepted()) == 30
    sent = len(server.requests()) - 30  # the second run's requests (the first sent 30)
    assert through == [f"POST {server.url}"] * sent  # plain HTTP: the absolute URI
    assert "uploads go through the proxy http://***:***@127.0.0.1:" in result.stderr
    nowhere_shown(PASSWORD, tmp_path, result.stdout, result.stderr)


@needs_tinyproxy
def test_https_goes_through_a_connect_tunnel_and_trusts_only_the_ca_bundle(
    tmp_path: Path, servers: list[SandboxServer], tls: TlsFiles
) -> None:
    song_catalogue(tmp_path / "cat", 30)
    server = start_sandbox(tmp_path, tls=tls)
    servers.append(server)
    port = server.url.split(":")[2].split("/")[0]
    with tinyproxy(tmp_path / "proxy", auth=AUTH, connect_ports=(int(port),)) as proxy:
        env = cli_env(HTTPS_PROXY=proxy.url)
        args = ("run", "cat", "--api-url", server.url, "--ca-bundle", str(tls.ca), "-v")
        result = run_cli(*args, cwd=tmp_path, env=env)
        tunnels = proxy.requests()
    assert result.code == 0, result.stderr
    assert len(server.accepted()) == 30
    handshakes = {r["conn"] for r in server.requests()}
    assert tunnels == [f"CONNECT 127.0.0.1:{port}"] * len(tunnels)
    assert 0 < len(tunnels) == len(handshakes) <= 8  # one tunnel per pooled connection
    assert f"trusting only the certificate authorities in {tls.ca} (--ca-bundle)" in result.stderr
    nowhere_shown(PASSWORD, tmp_path, result.stdout, result.stderr)


@needs_tinyproxy
def test_no_proxy_applies_to_the_proxy_flag_too_as_to_curl_x(
    tmp_path: Path, servers: list[SandboxServer]
) -> None:
    song_catalogue(tmp_path / "cat", 10)
    server = start_sandbox(tmp_path)
    servers.append(server)
    dead = f"http://127.0.0.1:{free_port()}"  # the flag wins over the variable
    with tinyproxy(tmp_path / "proxy", auth=AUTH) as proxy:
        env = cli_env(http_proxy=dead, NO_PROXY="127.0.0.0/8")
        bypassed = run_cli("run", "cat", "--api-url", server.url, "--db", "a.db",
                           "--proxy", proxy.url, cwd=tmp_path, env=env)  # fmt: skip
        direct = list(proxy.requests())
        env = cli_env(http_proxy=dead)
        flagged = run_cli("run", "cat", "--api-url", server.url, "--proxy", proxy.url,
                          cwd=tmp_path, env=env)  # fmt: skip
        through = proxy.requests()
    assert bypassed.code == 0, bypassed.stderr
    assert direct == []
    assert flagged.code == 0, flagged.stderr
    assert len(through) == 10
    # The password given on the command line is not kept with the run's command line.
    nowhere_shown(PASSWORD, tmp_path, bypassed.stderr, flagged.stdout, flagged.stderr)


@needs_tinyproxy
def test_a_proxy_that_refuses_the_password_stops_the_run_without_showing_it(
    tmp_path: Path, servers: list[SandboxServer], tls: TlsFiles
) -> None:
    song_catalogue(tmp_path / "cat", 20)
    server = start_sandbox(tmp_path, tls=tls)
    servers.append(server)
    with tinyproxy(tmp_path / "proxy", auth=AUTH) as proxy:
        wrong = proxy.url.replace(PASSWORD, "wrong-pw-9f3k")
        env = cli_env(https_proxy=wrong, SSL_CERT_FILE=str(tls.ca))
        result = run_cli("run", "cat", "--api-url", server.url, cwd=tmp_path, env=env)
    assert result.code == 5, result.stderr
    assert server.requests() == []
    line = last_line(result.stderr)
    assert f"the proxy http://***:***@127.0.0.1:{proxy.port} refused the credentials" in line
    nowhere_shown("wrong-pw-9f3k", tmp_path, result.stdout, result.stderr)


def test_a_certificate_from_an_unknown_ca_stops_the_run_at_once(
    tmp_path: Path, servers: list[SandboxServer], tls: TlsFiles
) -> None:
    song_catalogue(tmp_path / "cat", 50)
    server = start_sandbox(tmp_path, tls=tls)
    servers.append(server)
    env = cli_env()
    env.pop("SSL_CERT_FILE", None)
    started = time.monotonic()
    refused = run_cli("run", "cat", "--api-url", server.url, "--db", "a.db", cwd=tmp_path, env=env)
    elapsed = time.monotonic() - started
    assert refused.code == 5, refused.stderr
    assert elapsed < 15  # not retried: no backoff, no breaker
    line = last_line(refused.stderr)
    assert line.startswith("ingest: the TLS certificate of 127.0.0.1 was refused: "), line
    assert "unable to get local issuer certificate" in line and "--ca-bundle" in line
    assert "Traceback" not in refused.stderr
    trusted = run_cli("run", "cat", "--api-url", server.url, cwd=tmp_path,
                      env=cli_env(SSL_CERT_FILE=str(tls.ca)))  # fmt: skip
    assert trusted.code == 0, trusted.stderr
    assert "(SSL_CERT_FILE)" in trusted.stderr
    assert len(server.accepted()) == 50


def test_a_ca_bundle_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    song_catalogue(tmp_path / "cat", 1)
    (tmp_path / "not.pem").write_text("not a certificate\n")
    for bundle in ("missing.pem", "not.pem"):
        result = run_cli("run", "cat", "--ca-bundle", bundle, cwd=tmp_path)
        assert result.code == 2, result.stderr
        line = last_line(result.stderr)
        assert line.startswith(f"ingest: --ca-bundle {bundle}: cannot be read"), line
        assert len(result.stderr.strip().splitlines()) == 1
    # The bundle is read in a thread beside the start-up: a source that is missing is still
    # found first, and its error is the one line said.
    result = run_cli("run", "no-such-folder", "--ca-bundle", "not.pem", cwd=tmp_path)
    assert result.code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [last_line(result.stderr)]
    assert "no-such-folder" in result.stderr and "not.pem" not in result.stderr


def test_a_url_nothing_listens_on_fails_fast(tmp_path: Path) -> None:
    song_catalogue(tmp_path / "cat", 100)
    url = f"http://127.0.0.1:{free_port()}/v2/generate/audio/minimax/upload"
    started = time.monotonic()
    env = cli_env(AIMLAPI_API_KEY="sk-the-key-never-shown-0123")
    result = run_cli("run", "cat", "--api-url", url, "--max-attempts", "2", "--timeout", "2",
                     cwd=tmp_path, env=env)  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.code == 6, result.stderr
    assert elapsed < 45, elapsed  # the default --max-unreached is 30 s; not --max-outage's 10 min
    assert last_line(result.stderr) == (
        f"ingest: cannot reach {url}: connection refused; check --api-url"
    )
    assert "sk-the-key-never-shown-0123" not in result.stderr + result.stdout
    assert {r["status"] for r in export(tmp_path)} <= {"pending", "failed"}


UNSHARE = shutil.which("unshare")


def _can_unshare() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run([UNSHARE, "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare --net` (root, util-linux)")
def test_a_name_that_does_not_resolve_fails_fast_and_no_query_leaves_the_host(
    tmp_path: Path,
) -> None:
    """Run in a network namespace of its own, which has no interface up: the lookup fails on
    this host, and no query reaches a real resolver."""
    song_catalogue(tmp_path / "cat", 3)  # 6 attempts, the breaker never opens: the run ends
    url = "https://ingest-test-host.invalid/v2/generate/audio/minimax/upload"
    argv = [sys.executable, "-m", "pipeline", "run", "cat", "--api-url", url,
            "--max-attempts", "2", "--timeout", "2"]  # fmt: skip
    assert UNSHARE is not None
    proc = subprocess.run(
        [UNSHARE, "--net", *argv], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith(f"ingest: cannot reach {url}: name does not resolve"), line
    assert line.endswith("; check --api-url")


def test_debug_lines_say_each_request_and_answer_and_nothing_secret(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    served = tmp_path / "served"
    write_wav(served / "a.wav", 10.5, seed=1)
    song_catalogue(tmp_path / "cat", 2)
    with FileServer(served) as files:
        url = files.url("/files/a.wav?sig=topsecret-sig&X-Amz-Expires=300")
        with (tmp_path / "m.csv").open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([["url", "purpose"], [url, "song"]])
        result = run_cli(
            "run", "cat", "m.csv", "--api-url", sandbox.url, "--log-level", "debug", cwd=tmp_path
        )
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    sent = [line for line in lines if " DEBUG   -> POST " in line]
    answered = [line for line in lines if " DEBUG   <- POST " in line]
    assert len(sent) == len(answered) == 3, result.stderr
    assert f"-> POST {sandbox.url} purpose=song filename=t0000.wav (21044 bytes of file)" in (
        "\n".join(sent)
    )
    answer = re.compile(
        rf"<- POST {re.escape(sandbox.url)}: HTTP 200, base_resp 0, trace_id [0-9a-f]{{32}}, "
        r"\d+ bytes in \d+\.\d{3} s$"
    )
    assert all(answer.search(line) for line in answered), answered
    shown_url = url.split("?")[0] + "?sig=***&X-Amz-Expires=***"
    assert any(line.endswith(f"-> GET {shown_url}") for line in lines), result.stderr
    assert any(f"<- GET {shown_url}: HTTP 200, 84044 bytes in " in line for line in lines)
    assert DEMO_KEY not in result.stderr + result.stdout
    # The source is the URL as written, in the info lines and the ledger (the audit trail);
    # what the debug lines add never shows a query's values.
    assert not any("topsecret-sig" in line for line in lines if " DEBUG " in line)


def test_a_socks_proxy_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    song_catalogue(tmp_path / "cat", 1)
    env = cli_env(ALL_PROXY="socks5://u:sockspw@127.0.0.1:1080")
    result = run_cli("run", "cat", "--api-url", "https://api.example/v2/upload", cwd=tmp_path,
                     env=env)  # fmt: skip
    assert result.code == 2, result.stderr
    assert last_line(result.stderr) == (
        "ingest: proxy socks5://***:***@127.0.0.1:1080 for https://api.example/v2/upload: "
        "socks5:// proxies are not supported (only http:// and https://)"
    )
    assert not (tmp_path / "ingest.db").exists()


@needs_tinyproxy
def test_downloads_take_their_own_proxy_and_no_proxy_is_per_host(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    served = tmp_path / "served"
    write_wav(served / "a.wav", 10.5, seed=3)
    with FileServer(served) as files, tinyproxy(tmp_path / "proxy") as proxy:
        url = files.url("/files/a.wav").replace("127.0.0.1", "localhost")  # from /etc/hosts
        with (tmp_path / "m.csv").open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([["url", "purpose"], [url, "song"]])
        env = cli_env(http_proxy=proxy.url, NO_PROXY="127.0.0.1")  # the upload goes direct
        result = run_cli("run", "m.csv", "--api-url", sandbox.url, cwd=tmp_path, env=env)
        through = proxy.requests()
    assert result.code == 0, result.stderr
    assert through == [f"GET {url}"]
    assert len(sandbox.accepted()) == 1
