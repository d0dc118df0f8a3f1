"""A ledger written by the previous release upgrades in place: every id kept, nothing re-sent.

The old ledger is built by the old migrations themselves (Alembic up to revision 0001 only), and
filled the way the previous release filled it: files uploaded and done, one failed for good.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine

from pipeline.ledger.migrate import _script
from pipeline.ledger.models import SCHEMA_REVISION
from pipeline.sandbox.samples import write_wav
from tests.conftest import SandboxServer, export, run_cli

pytestmark = pytest.mark.e2e


def old_ledger(path: Path, revision: str = "0001") -> None:
    cfg, _ = _script()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def record_done(conn: sqlite3.Connection, path: Path, n: int) -> None:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    conn.execute(
        "INSERT INTO contents (sha256, purpose, size, status, attempts, voice_id, "
        "instrumental_id, trace_id, created_at, updated_at, done_at) "
        "VALUES (?, 'song', ?, 'done', 1, ?, ?, ?, 1, 1, 1)",
        (sha, len(data), f"vocal-old-{n}", f"instrumental-old-{n}", f"trace-{n}"),
    )
    content_id = conn.execute("SELECT id FROM contents WHERE sha256 = ?", (sha,)).fetchone()[0]
    conn.execute(
        "INSERT INTO sources (source, purpose, kind, path, filename, size, mtime_ns, sha256, "
        "content_id, status, run_id, created_at, updated_at) "
        "VALUES (?, 'song', 'file', ?, ?, ?, ?, ?, ?, 'ok', 1, 1, 1)",
        (str(path), str(path), path.name, len(data), path.stat().st_mtime_ns, sha, content_id),
    )


def test_a_previous_release_ledger_upgrades_keeps_every_id_and_sends_nothing_again(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    files = [write_wav(tmp_path / "cat" / "song" / f"t{i}.wav", 10.5, seed=i) for i in range(4)]
    db = tmp_path / "ingest.db"
    old_ledger(db)
    with sqlite3.connect(db) as conn:
        for n, path in enumerate(files):
            record_done(conn, path, n)
        conn.execute(
            "INSERT INTO runs (started_at, pid, host, command, status, exit_code) "
            "VALUES (1, 1, 'old', 'ingest run cat', 'finished', 0)"
        )
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert sandbox.requests() == []  # nothing re-sent, nothing re-hashed into a new content
    records = sorted(export(tmp_path), key=lambda r: r["source"])
    assert [(r["voice_id"], r["instrumental_id"], r["trace_id"]) for r in records] == [
        (f"vocal-old-{n}", f"instrumental-old-{n}", f"trace-{n}") for n in range(4)
    ]
    with sqlite3.connect(db) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        assert version == SCHEMA_REVISION
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_ledger_before_etags_upgrades_in_place_keeping_every_id(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    files = [write_wav(tmp_path / "cat" / "song" / f"t{i}.wav", 10.5, seed=i) for i in range(3)]
    db = tmp_path / "ingest.db"
    old_ledger(db, "0002")
    with sqlite3.connect(db) as conn:
        for n, path in enumerate(files):
            record_done(conn, path, n)
        before = conn.execute("SELECT id, source, content_id FROM sources ORDER BY id").fetchall()
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert sandbox.requests() == []
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_REVISION
        )
        after = conn.execute("SELECT id, source, content_id FROM sources ORDER BY id").fetchall()
        assert after == before
        assert conn.execute("SELECT count(*) FROM sources WHERE etag IS NOT NULL").fetchone() == (
            0,
        )
