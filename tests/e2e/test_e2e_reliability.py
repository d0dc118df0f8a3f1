"""Crash, stop, faults, limits, locks and clear failure: the CLI as a subprocess throughout."""

from __future__ import annotations

import collections
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_mp3, write_wav
from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    run_cli,
    start_sandbox,
    stop_sandbox,
)

pytestmark = pytest.mark.e2e


def catalogue(root: Path, count: int) -> Path:
    purposes = ("song", "voice", "instrumental")
    for i in range(count):
        folder = root / purposes[i % 3] / f"disc-{i // 50}"
        if i % 2:
            write_mp3(folder / f"t{i:04d}.mp3", 10.5, seed=i)
        else:
            write_wav(folder / f"t{i:04d}.wav", 10.5, seed=i, rate=2000)
    return root


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[list[SandboxServer]]:
    servers: list[SandboxServer] = []
    yield servers
    for server in servers:
        stop_sandbox(server)


def sandbox_with(
    servers: list[SandboxServer], tmp_path: Path, *flags: str, key: str | None = None
) -> SandboxServer:
    server = start_sandbox(tmp_path, *flags, **({"key": key} if key else {}))
    servers.append(server)
    return server


def uploads_per_content(server: SandboxServer) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (r["sha256"], r["purpose"]) for r in server.requests() if r["outcome"] == "ok"
    )


def start_run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=tmp_path,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def ledger_ok(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_third_of_requests_failing_still_finishes_every_file_once(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 30)
    server = sandbox_with(
        server_factory,
        tmp_path,
        "--error-rate",
        "0.1",
        "--throttle-rate",
        "0.07",
        "--busy-rate",
        "0.07",
        "--drop-rate",
        "0.05",
        "--hang-rate",
        "0.04",
        "--retry-after",
        "0.1",
        "--seed",
        "11",
    )
    result = run_cli(
        "run",
        "cat",
        "--api-url",
        server.url,
        "--timeout",
        "1.5",
        "--max-attempts",
        "15",
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    outcomes = collections.Counter(r["outcome"] for r in server.requests())
    assert sum(v for k, v in outcomes.items() if k.startswith("fault")) >= 5, outcomes
    assert set(uploads_per_content(server).values()) == {1}
    assert len(uploads_per_content(server)) == 30
    assert all(r["status"] == "done" for r in export(tmp_path))


def test_kill_9_mid_run_then_rerun_finishes_with_at_most_in_flight_repeated(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 120)
    server = sandbox_with(server_factory, tmp_path, "--latency", "0.05")
    args = ("cat", "--api-url", server.url, "--concurrency", "4")
    for kill_after in (15, 50):
        proc = start_run(tmp_path, *args)
        wait_for(lambda n=kill_after: len(server.requests()) >= n)
        proc.kill()
        proc.communicate()
        ledger_ok(tmp_path / "ingest.db")
    result = run_cli("run", *args, cwd=tmp_path)
    assert result.code == 0, result.stderr
    counts = uploads_per_content(server)
    assert len(counts) == 120
    repeated = sum(n - 1 for n in counts.values())
    assert repeated <= 2 * 4  # at most the uploads in flight at each kill
    runs = (
        sqlite3.connect(tmp_path / "ingest.db")
        .execute("SELECT status FROM runs ORDER BY id")
        .fetchall()
    )
    assert [r[0] for r in runs] == ["crashed", "crashed", "finished"]


def test_sigterm_finishes_in_flight_and_the_rerun_repeats_nothing(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 40)
    server = sandbox_with(server_factory, tmp_path, "--latency", "1.0")
    args = ("cat", "--api-url", server.url, "--concurrency", "4")
    proc = start_run(tmp_path, *args)
    wait_for(lambda: len(server.requests()) >= 4)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - sent < 15
    assert "Traceback" not in stderr
    result = run_cli("run", *args, cwd=tmp_path)
    assert result.code == 0, result.stderr
    counts = uploads_per_content(server)
    assert len(counts) == 40 and set(counts.values()) == {1}


def test_a_held_ledger_exits_3_naming_the_holder_and_wait_waits(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 12)
    # The first run takes 9 s or more (12 files, 2 at a time, 1.5 s each): the second is sure
    # to find it holding the ledger, however slowly a loaded machine starts it.
    server = sandbox_with(server_factory, tmp_path, "--latency", "1.5")
    first = start_run(tmp_path, "cat", "--api-url", server.url, "--concurrency", "2")
    wait_for(lambda: len(server.requests()) >= 1)
    started = time.monotonic()
    second = run_cli("run", "cat", "--api-url", server.url, cwd=tmp_path)
    assert second.code == 3, second.stderr
    assert time.monotonic() - started < 5
    assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    waiting = run_cli("run", "cat", "--api-url", server.url, "--wait", cwd=tmp_path)
    assert waiting.code == 0, waiting.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert set(uploads_per_content(server).values()) == {1}


def test_rate_limit_is_respected_and_adaptive_mode_finishes(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 36)
    server = sandbox_with(server_factory, tmp_path, "--max-rps", "10")
    result = run_cli(
        "run", "cat", "--api-url", server.url, "--rate", "9", "--concurrency", "8", cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    throttled = [r for r in server.requests() if r["outcome"].startswith("http 429")]
    assert len(throttled) <= 2  # "almost none": loopback jitter can bunch two starts
    catalogue(tmp_path / "cat2", 36)
    for path in (tmp_path / "cat2").rglob("*.wav"):
        path.write_bytes(path.read_bytes() + b"\0\0")  # new bytes, so new uploads
    for path in (tmp_path / "cat2").rglob("*.mp3"):
        path.write_bytes(path.read_bytes() + bytes(417))
    before = len(server.requests())
    adaptive = run_cli(
        "run",
        "cat2",
        "--api-url",
        server.url,
        "--concurrency",
        "8",
        "--db",
        "adaptive.db",
        cwd=tmp_path,
    )
    assert adaptive.code == 0, adaptive.stderr
    assert len([r for r in server.requests()[before:] if r["outcome"] == "ok"]) == 36


def test_refused_key_stops_at_once_and_leaves_everything_pending(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 20)
    server = sandbox_with(server_factory, tmp_path, key="the-right-key")
    result = run_cli("run", "cat", "--api-url", server.url, cwd=tmp_path)
    assert result.code == 5, result.stderr
    assert "AIMLAPI_API_KEY" in result.stderr
    assert len(server.requests()) <= 8 + 1  # the in-flight ones, not one per file
    assert {r["status"] for r in export(tmp_path)} == {"pending"}
    fixed = run_cli(
        "run",
        "cat",
        "--api-url",
        server.url,
        cwd=tmp_path,
        env=cli_env(AIMLAPI_API_KEY="the-right-key"),
    )
    assert fixed.code == 0, fixed.stderr


def test_unreachable_service_exits_6_and_the_next_run_takes_the_entries(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{closed_port}/v2/generate/audio/minimax/upload"
    result = run_cli("run", "cat", "--api-url", dead, "--max-attempts", "2", cwd=tmp_path)
    assert result.code == 6, result.stderr
    records = export(tmp_path)
    assert all(r["status"] == "failed" and r["retryable"] for r in records)
    server = sandbox_with(server_factory, tmp_path)
    again = run_cli("run", "cat", "--api-url", server.url, cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert len(uploads_per_content(server)) == 3


def test_time_budget_stops_intake_and_exits_4(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 20)
    server = sandbox_with(server_factory, tmp_path, "--latency", "0.5")
    args = ("cat", "--api-url", server.url, "--concurrency", "1")
    result = run_cli(*("run", *args), "--max-duration", "2s", cwd=tmp_path)
    assert result.code == 4, result.stderr
    done = [r for r in export(tmp_path) if r["status"] == "done"]
    assert 1 <= len(done) < 20
    assert run_cli("run", *args, "--concurrency", "8", cwd=tmp_path).code == 0
    assert set(uploads_per_content(server).values()) == {1}


def test_failed_for_good_is_skipped_until_retry_failed(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 3)
    rejecting = sandbox_with(server_factory, tmp_path, "--reject-rate", "1")
    assert run_cli("run", "cat", "--api-url", rejecting.url, cwd=tmp_path).code == 1
    assert all("1026" in r["error"] for r in export(tmp_path))
    plain = run_cli("run", "cat", "--api-url", rejecting.url, cwd=tmp_path)
    assert plain.code == 0 and len(rejecting.requests()) == 3
    server = sandbox_with(server_factory, tmp_path)
    retried = run_cli("run", "cat", "--api-url", server.url, "--retry-failed", cwd=tmp_path)
    assert retried.code == 0, retried.stderr
    assert {r["status"] for r in export(tmp_path)} == {"done"}


def test_the_key_appears_nowhere(tmp_path: Path, server_factory: list[SandboxServer]) -> None:
    key = "sk-secret-4242-do-not-print"
    catalogue(tmp_path / "cat", 4)
    (tmp_path / "cat" / "song" / "bad.wav").write_bytes(b"junk")
    server = sandbox_with(server_factory, tmp_path, "--error-rate", "0.3", "--seed", "5", key=key)
    env = cli_env(AIMLAPI_API_KEY=key)
    outputs = []
    for fmt in ("text", "json"):
        result = run_cli(
            "run",
            "cat",
            "--api-url",
            server.url,
            "--log-level",
            "debug",
            "--log-format",
            fmt,
            "--db",
            f"{fmt}.db",
            cwd=tmp_path,
            env=env,
        )
        assert "attempt" in result.stderr  # debug shows every attempt
        outputs += [result.stdout, result.stderr]
        for command in ("status", "export"):
            outputs.append(run_cli(command, "--db", f"{fmt}.db", cwd=tmp_path, env=env).stdout)
    wrong = run_cli(
        "run",
        "cat",
        "--api-url",
        server.url,
        "--db",
        "wrong.db",
        cwd=tmp_path,
        env=cli_env(AIMLAPI_API_KEY=key + "-wrong"),
    )
    outputs += [wrong.stdout, wrong.stderr]
    assert not any(key in text for text in outputs)
    for path in tmp_path.glob("*.db*"):
        assert key.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "no-such-folder"], "source not found: no-such-folder"),
        (["run", "cat", "--purpose", "podcast"], "unknown purpose 'podcast'"),
        (["run", "cat", "--api-url", "not a url"], "--api-url"),
        (["run", "cat", "--concurrency", "0"], "--concurrency"),
        (["run", "cat", "--concurrency", "-3"], "--concurrency"),
        (["run", "cat", "--max-duration", "soon"], "--max-duration"),
        (["run", "cat", "--db", "/no/such/dir/x.db"], "does not exist"),
        (["run", "cat", "--db", "notes.txt"], "not an ingest ledger"),
        (["run", "nosource.csv"], "no source column"),
        (["run", "cat", "--config", "missing.toml"], "config file not found"),
        (["run", "cat", "--bogus"], "unrecognized arguments"),
        (["run"], "no SOURCE given"),
        (["status", "--db", "absent.db"], "no ledger at"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_command_lines_get_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "cat" / "song").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("my notes, not a ledger\n")
    (tmp_path / "nosource.csv").write_text("file,kind\na.wav,song\n")
    result = run_cli(*args, cwd=tmp_path)
    assert result.code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "my notes, not a ledger\n"


def test_missing_key_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    env = cli_env()
    del env["AIMLAPI_API_KEY"]
    result = run_cli("run", "cat", cwd=tmp_path, env=env)
    assert result.code == 2 and "AIMLAPI_API_KEY" in result.stderr


def test_os_environment_is_read_only_at_the_edge() -> None:
    root = Path(__file__).resolve().parents[2] / "pipeline"
    edge = {"cli.py", "demo.py"}  # the command line, and the demo script that spawns it
    readers = [
        p.name
        for p in root.rglob("*.py")
        if re.search(r"os\.environ(?!`)", p.read_text()) and p.name not in edge
    ]
    assert readers == [], readers


def test_a_second_signal_aborts_at_once(
    tmp_path: Path, server_factory: list[SandboxServer]
) -> None:
    catalogue(tmp_path / "cat", 6)
    server = sandbox_with(server_factory, tmp_path, "--hang-rate", "1")
    proc = start_run(tmp_path, "cat", "--api-url", server.url, "--timeout", "60", "--grace", "60")
    wait_for(lambda: attempts_recorded(tmp_path / "ingest.db") >= 1)
    time.sleep(0.3)  # the request is on the wire; the sandbox will never answer it
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the first signal waits for in-flight uploads (grace 60 s)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 3
    ledger_ok(tmp_path / "ingest.db")
    assert {r["status"] for r in export(tmp_path)} == {"pending"}


def attempts_recorded(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(
                conn.execute("SELECT coalesce(sum(attempts), 0) FROM contents").fetchone()[0]
            )
    except sqlite3.Error:
        return 0
