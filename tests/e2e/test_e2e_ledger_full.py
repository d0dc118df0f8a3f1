"""A ledger that cannot be written stops the run within seconds, in one line, and resumes later.

Three ways the ledger stops taking writes, as they happen to nightly jobs: the filesystem fills
up (a small tmpfs, where the test may mount one; else a file-size limit on the process, which
fails writes the same way without privileges), and the ledger file removed mid-run (where SQLite
would otherwise go on writing into a file nobody will open again).
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    run_cli,
    song_catalogue,
    start_cli,
    wait_until,
)

pytestmark = pytest.mark.e2e
FILES = 240


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the file-size-limit test covers it")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def run_with(
    tmp_path: Path, db: Path, url: str, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "cat", "--db", str(db), "--api-url", url],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
        check=False,
    )


def assert_stopped_cleanly(result: subprocess.CompletedProcess[str], db: Path) -> None:
    assert result.returncode == 7, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ingest: ledger {db} cannot be written: "), last
    assert "run again to resume" in last


def assert_resumes(tmp_path: Path, db: Path, sandbox: SandboxServer) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = run_cli("run", "cat", "--db", str(db), "--api-url", sandbox.url, cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert [r["status"] for r in export(tmp_path, str(db))] == ["done"] * FILES
    sent = sandbox.accepted()
    assert len(sent) == FILES
    assert sum(n - 1 for n in sent.values()) <= 8  # at most the answers that were not recorded


def test_a_full_filesystem_stops_the_run_and_the_next_run_resumes(
    tmp_path: Path, sandbox: SandboxServer, small_fs: Path
) -> None:
    song_catalogue(tmp_path / "cat", FILES)
    db = small_fs / "ingest.db"
    assert run_cli("db", "upgrade", "--db", str(db), cwd=tmp_path).code == 0
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 48 * 1024))  # leave 48 KB for the ledger
    started = time.monotonic()
    result = run_with(tmp_path, db, sandbox.url)
    assert_stopped_cleanly(result, db)
    assert "database or disk is full" in result.stderr
    assert time.monotonic() - started < 60
    filler.unlink()
    assert_resumes(tmp_path, db, sandbox)


def test_a_file_size_limit_stops_the_run_and_the_next_run_resumes(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """The same failure without privileges: writes past RLIMIT_FSIZE fail like a full disk."""
    song_catalogue(tmp_path / "cat", FILES)
    db = tmp_path / "ingest.db"
    assert run_cli("db", "upgrade", "--db", str(db), cwd=tmp_path).code == 0
    limit = db.stat().st_size + 48 * 1024

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_with(tmp_path, db, sandbox.url, preexec=limited)
    assert_stopped_cleanly(result, db)
    assert_resumes(tmp_path, db, sandbox)


def test_a_ledger_removed_mid_run_stops_the_run_instead_of_writing_into_the_void(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", FILES)
    db = tmp_path / "ingest.db"
    proc = start_cli(tmp_path, "run", "cat", "--db", str(db), "--api-url", sandbox.url)
    wait_until(lambda: len(sandbox.requests()) >= 20)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)  # a clean-up script gone wrong
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - started < 10
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    assert_stopped_cleanly(result, db)
    assert "removed or replaced while this run was using it" in stderr
