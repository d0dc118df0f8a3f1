"""End to end: the `ingest` CLI as a subprocess, a real SQLite ledger, the sandbox on loopback."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pipeline.sandbox.samples import make_catalogue, write_wav
from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    run_cli,
    start_sandbox,
    stop_sandbox,
)

pytestmark = pytest.mark.e2e


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_catalogue_uploaded_once_and_rerun_sends_nothing(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    counts = make_catalogue(tmp_path / "cat", per_purpose=4)
    first = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert first.code == 1, first.stderr  # the bad files failed for good
    requests = sandbox.requests()
    ok = [r for r in requests if r["outcome"] == "ok"]
    assert len(requests) == len(ok) == counts["good"]  # duplicates once, bad files never

    records = export(tmp_path)
    done = [r for r in records if r["status"] == "done"]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(done) == counts["good"] + counts["duplicates"]
    assert len(failed) == counts["bad"] and all(r["error"] for r in failed)
    issued = {(r["sha256"], r["purpose"]): r for r in ok}
    for record in done:
        sent = issued[(sha(Path(record["source"])), record["purpose"])]
        assert (record["voice_id"], record["instrumental_id"]) == (
            sent["voice_id"],
            sent["instrumental_id"],
        )
        expected_type = "audio/wav" if record["source"].endswith(".wav") else "audio/mpeg"
        assert sent["content_type"] == expected_type
        same_bytes = {
            Path(r["source"]).name
            for r in done
            if (r["sha256"], r["purpose"]) == (record["sha256"], record["purpose"])
        }
        assert sent["filename"] in same_bytes

    second = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert second.code == 0, second.stderr  # known bad files do not alert again
    assert len(sandbox.requests()) == len(requests)
    assert "skipped, failed   6" in second.stdout


def test_changed_file_is_uploaded_again_unchanged_is_not_rehashed(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    track = write_wav(tmp_path / "cat" / "voice" / "a.wav", 11, seed=1)
    assert run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path).code == 0
    write_wav(track, 12, seed=2)
    assert run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path).code == 0
    assert [r["outcome"] for r in sandbox.requests()] == ["ok", "ok"]
    (record,) = export(tmp_path)
    assert record["sha256"] == sha(track)


def test_dry_run_sends_nothing_and_creates_no_ledger(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    make_catalogue(tmp_path / "cat", per_purpose=2)
    env = cli_env()
    del env["AIMLAPI_API_KEY"]  # a dry run needs no key
    result = run_cli("run", "cat", "--dry-run", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code == 1, result.stderr  # bad files would fail
    assert "would upload: 6 files" in result.stdout
    assert sandbox.requests() == []
    assert not (tmp_path / "ingest.db").exists()


def test_dry_run_leaves_an_existing_ledger_unchanged(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    write_wav(tmp_path / "cat" / "song" / "a.wav", 11, seed=1)
    run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    write_wav(tmp_path / "cat" / "song" / "b.wav", 11, seed=2)
    (tmp_path / "cat" / "song" / "copy-of-a.wav").write_bytes(
        (tmp_path / "cat" / "song" / "a.wav").read_bytes()
    )  # already uploaded under another name: not counted as work
    before = (
        sqlite3.connect(tmp_path / "ingest.db").execute("SELECT count(*) FROM sources").fetchone()
    )
    result = run_cli("run", "cat", "--dry-run", cwd=tmp_path)
    assert "would upload: 1 files" in result.stdout
    after = (
        sqlite3.connect(tmp_path / "ingest.db").execute("SELECT count(*) FROM sources").fetchone()
    )
    assert before == after and len(sandbox.requests()) == 1


def test_a_dry_run_decides_as_a_real_run_would(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Bytes that failed for good earlier are not counted as work under a new name, unless
    --retry-failed (a dry run goes through the same steps, with a writer that records nothing)."""
    rejecting = start_sandbox(tmp_path, "--reject-rate", "1")  # base_resp 1026: final
    try:
        track = write_wav(tmp_path / "cat" / "song" / "a.wav", 11, seed=1)
        assert run_cli("run", "cat", "--api-url", rejecting.url, cwd=tmp_path).code == 1
    finally:
        stop_sandbox(rejecting)
    (tmp_path / "cat" / "song" / "renamed.wav").write_bytes(track.read_bytes())
    plain = run_cli("run", "cat", "--dry-run", cwd=tmp_path)
    assert "would upload: 0 files" in plain.stdout, plain.stdout
    again = run_cli("run", "cat", "--dry-run", "--retry-failed", cwd=tmp_path)
    assert "would upload: 1 files" in again.stdout, again.stdout


def test_files_without_purpose_are_reported_not_uploaded(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    write_wav(tmp_path / "cat" / "misc" / "a.wav", 11)
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 1 and "no purpose" in result.stderr
    assert sandbox.requests() == []
    result = run_cli(
        "run", "cat", "--purpose", "instrumental", "--api-url", sandbox.url, cwd=tmp_path
    )
    assert result.code == 0
    assert [(r["purpose"], r["status"]) for r in export(tmp_path)] == [("instrumental", "done")]


def test_status_shows_counts_and_runs(tmp_path: Path, sandbox: SandboxServer) -> None:
    make_catalogue(tmp_path / "cat", per_purpose=2)
    run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    result = run_cli("status", cwd=tmp_path)
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["purpose", "done", "failed", "pending", "total"]
    assert "song" in result.stdout and "exit 1" in result.stdout
    assert any(line.split()[:4] == ["all", "7", "6", "0"] for line in lines)


def test_export_csv_to_a_file_is_atomic_and_never_overwrites(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    write_wav(tmp_path / "cat" / "song" / "a.wav", 11)
    run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert run_cli("export", "--format", "csv", "-o", "out.csv", cwd=tmp_path).code == 0
    header = (tmp_path / "out.csv").read_text().splitlines()[0].split(",")
    assert header[:8] == [
        "source",
        "purpose",
        "sha256",
        "status",
        "voice_id",
        "instrumental_id",
        "error",
        "attempts",
    ]
    (tmp_path / "mine.csv").write_text("not yours")
    refused = run_cli("export", "-o", "mine.csv", cwd=tmp_path)
    assert refused.code == 2 and (tmp_path / "mine.csv").read_text() == "not yours"


def test_status_json_has_the_same_figures_as_the_text_view(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    import json

    counts = make_catalogue(tmp_path / "cat", per_purpose=2)
    assert run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path).code == 1
    text = run_cli("status", cwd=tmp_path)
    data = json.loads(run_cli("status", "--json", cwd=tmp_path).stdout)
    all_row = next(line for line in text.stdout.splitlines() if line.startswith("all "))
    assert all_row.split()[1:] == [
        str(data["all"][k]) for k in ("done", "failed", "pending", "total")
    ]
    assert data["all"]["done"] == counts["good"] + counts["duplicates"]
    assert data["all"]["failed"] == counts["bad"]
    (run,) = data["runs"]
    assert (run["exit_code"], run["uploaded"], run["failed"]) == (1, counts["good"], counts["bad"])
    assert f"uploaded {run['uploaded']}, failed {run['failed']}" in text.stdout


def test_export_for_excel_has_a_byte_order_mark_and_crlf(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    write_wav(tmp_path / "cat" / "song" / "Café del Mar.wav", 11)
    assert run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path).code == 0
    assert run_cli("export", "--excel", "-o", "ids.csv", cwd=tmp_path).code == 0
    data = (tmp_path / "ids.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfsource,purpose,") and data.endswith(b"\r\n")
    assert "Café del Mar.wav".encode() in data and b"\n" not in data.replace(b"\r\n", b"")
    plain = run_cli("export", "--format", "csv", cwd=tmp_path).stdout
    assert plain.startswith("source,") and "\r" not in plain
