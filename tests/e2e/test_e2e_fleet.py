"""Many runs on one PostgreSQL ledger: the real CLI, a real PostgreSQL, the sandbox on loopback.

Each test gets a fresh database (tests/pg.py); without a server they are skipped with a line
saying how to run them (and fail in CI, which requires one).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import (
    SandboxServer,
    export,
    run_cli,
    song_catalogue,
    start_cli,
    start_sandbox,
    stop_sandbox,
    wait_until,
)

pytestmark = pytest.mark.e2e


def start_run(tmp_path: Path, db: str, url: str, *extra: str) -> subprocess.Popen[str]:
    return start_cli(tmp_path, "run", "cat", "--db", db, "--api-url", url, *extra)


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> SandboxServer:
    server = start_sandbox(tmp_path, "--latency", "0.1")
    yield server  # type: ignore[misc]
    stop_sandbox(server)


def test_a_run_and_a_rerun_on_each_backend(
    tmp_path: Path, ledger_url: str, sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", 12)
    first = run_cli("run", "cat", "--db", ledger_url, "--api-url", sandbox.url, cwd=tmp_path)
    assert first.code == 0, first.stderr
    again = run_cli("run", "cat", "--db", ledger_url, "--api-url", sandbox.url, cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert len(sandbox.requests()) == 12 and set(sandbox.accepted().values()) == {1}
    records = export(tmp_path, ledger_url)
    assert len(records) == 12 and all(r["status"] == "done" for r in records)


def test_three_runs_on_one_catalogue_share_the_work_and_send_each_content_once(
    tmp_path: Path, pg_url: str, slow_sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", 150)
    assert run_cli("db", "upgrade", "--db", pg_url, cwd=tmp_path).code == 0
    runs = [start_run(tmp_path, pg_url, slow_sandbox.url, "--concurrency", "4") for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    sent = slow_sandbox.accepted()
    assert len(sent) == 150 and set(sent.values()) == {1}
    shares = [int(out.split("uploaded")[1].split()[0]) for out, _ in outputs]
    assert sum(shares) == 150 and sum(1 for n in shares if n > 0) >= 2, shares
    assert all(r["status"] == "done" for r in export(tmp_path, pg_url))


def test_a_run_killed_mid_way_is_taken_over_by_the_runs_still_going(
    tmp_path: Path, pg_url: str, slow_sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", 160)
    assert run_cli("db", "upgrade", "--db", pg_url, cwd=tmp_path).code == 0
    lease = ("--lease", "3", "--concurrency", "4")
    runs = [start_run(tmp_path, pg_url, slow_sandbox.url, *lease) for _ in range(3)]
    wait_until(lambda: len(slow_sandbox.requests()) >= 50)
    runs[0].send_signal(signal.SIGKILL)
    runs[0].communicate()
    killed_at = time.monotonic()
    for run in runs[1:]:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    assert time.monotonic() - killed_at < 60
    sent = slow_sandbox.accepted()
    assert len(sent) == 160
    assert sum(n - 1 for n in sent.values()) <= 4  # at most what the killed run had in flight
    assert all(r["status"] == "done" for r in export(tmp_path, pg_url))
    status = json.loads(run_cli("status", "--json", "--db", pg_url, cwd=tmp_path).stdout)
    assert [r["status"] for r in status["runs"]].count("finished") == 2


def test_status_shows_the_live_runs_and_marks_a_lost_one(
    tmp_path: Path, pg_url: str, slow_sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", 80)
    assert run_cli("db", "upgrade", "--db", pg_url, cwd=tmp_path).code == 0
    run = start_run(tmp_path, pg_url, slow_sandbox.url, "--lease", "2", "--concurrency", "2")
    wait_until(lambda: len(slow_sandbox.requests()) >= 10)
    live = json.loads(run_cli("status", "--json", "--db", pg_url, cwd=tmp_path).stdout)
    (going,) = live["running"]
    assert going["live"] and going["pid"] == run.pid
    run.send_signal(signal.SIGKILL)
    run.communicate()
    time.sleep(3)  # past the lease: its heartbeat has stopped
    text = run_cli("status", "--db", pg_url, cwd=tmp_path).stdout
    assert f"(pid {run.pid})" in text and "LOST (last heartbeat" in text


def test_a_dropped_database_connection_is_survived(
    tmp_path: Path, pg_url: str, slow_sandbox: SandboxServer
) -> None:
    """What a run sees when PostgreSQL restarts: its connections cut under it."""
    song_catalogue(tmp_path / "cat", 60)
    run = start_run(tmp_path, pg_url, slow_sandbox.url, "--concurrency", "4")
    wait_until(lambda: len(slow_sandbox.requests()) >= 15)
    database = pg_url.rsplit("/", 1)[1]

    async def cut() -> None:
        from tests.pg import ADMIN_URL

        conn = await asyncpg.connect(ADMIN_URL)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        await conn.close()

    import asyncio

    asyncio.run(cut())
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert all(r["status"] == "done" for r in export(tmp_path, pg_url))
    assert len(slow_sandbox.accepted()) == 60


def test_the_metrics_file_has_the_run_s_figures(tmp_path: Path, sandbox: SandboxServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    song_catalogue(tmp_path / "cat", 5)
    (tmp_path / "cat" / "song" / "bad.wav").write_bytes(b"not audio")
    metrics = tmp_path / "ingest.prom"
    args = ("run", "cat", "--api-url", sandbox.url, "--metrics-file", str(metrics))
    assert run_cli(*args, cwd=tmp_path).code == 1
    values = {
        f.name: f.samples[0].value for f in text_string_to_metric_families(metrics.read_text())
    }
    assert values["ingest_exit_code"] == 1 and values["ingest_running"] == 0
    assert (values["ingest_uploaded_files"], values["ingest_failed_files"]) == (5, 1)
    assert "ingest_last_success_timestamp_seconds" not in values
    assert run_cli(*args, cwd=tmp_path).code == 0  # nothing new: a success
    after = {
        f.name: f.samples[0].value for f in text_string_to_metric_families(metrics.read_text())
    }
    assert after["ingest_exit_code"] == 0 and after["ingest_last_success_timestamp_seconds"] > 0
