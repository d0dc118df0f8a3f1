"""A ledger written by an earlier release upgrades in place: every id kept, nothing re-sent.

The old ledger is built by the old migrations themselves (Alembic up to revision 0001, or 0002),
and filled the way that release filled it: files uploaded and done, one failed for good.
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
from tests.encoders import need, run

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


def test_a_0002_ledger_upgrades_and_the_masters_it_refused_are_now_decoded_and_sent(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """The previous release refused a FLAC (failed for good) and sent WAVs: after the upgrade,
    every id is kept, the WAVs are not sent again, and the FLAC is decoded and sent."""
    need("sox", "flac")
    wavs = [write_wav(tmp_path / "cat" / "song" / f"t{i}.wav", 10.5, seed=i) for i in range(3)]
    src = tmp_path / "src.wav"
    run(["sox", "-R", "-n", "-r", "44100", "-b", "16", "-c", "2", str(src), "synth", "11", "sine"])
    flac = tmp_path / "cat" / "song" / "master.flac"
    run(["flac", "-s", "-f", "-o", str(flac), str(src)])
    db = tmp_path / "ingest.db"
    old_ledger(db, "0002")
    with sqlite3.connect(db) as conn:
        for n, path in enumerate(wavs):
            record_done(conn, path, n)
        conn.execute(
            "INSERT INTO sources (source, purpose, kind, path, filename, size, mtime_ns, sha256, "
            "status, retryable, error, run_id, created_at, updated_at) VALUES "
            "(?, 'song', 'file', ?, ?, ?, ?, ?, 'failed', 0, ?, 1, 1, 1)",
            (
                str(flac),
                str(flac),
                flac.name,
                flac.stat().st_size,
                flac.stat().st_mtime_ns,
                hashlib.sha256(flac.read_bytes()).hexdigest(),
                "FLAC audio is not accepted (only WAV or MP3)",
            ),
        )
        ids = sorted(conn.execute("SELECT id, source FROM sources").fetchall())
        content_ids = sorted(conn.execute("SELECT id, sha256 FROM contents").fetchall())
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    (sent,) = sandbox.requests()  # the FLAC, decoded; no WAV again
    assert sent["filename"] == "master.wav"
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_REVISION
        )
        assert sorted(conn.execute("SELECT id, source FROM sources").fetchall()) == ids
        assert sorted(conn.execute("SELECT id, sha256 FROM contents").fetchall())[:3] == (
            content_ids
        )
    records = {Path(r["source"]).name: r for r in export(tmp_path)}
    assert [records[p.name]["voice_id"] for p in wavs] == [f"vocal-old-{n}" for n in range(3)]
    assert records["t0.wav"]["converted_from"] is None
    assert records["t0.wav"]["sent_sha256"] == records["t0.wav"]["sha256"]
    master = records["master.flac"]
    assert (master["status"], master["converted_from"]) == ("done", "flac")
    assert master["sent_sha256"] == sent["sha256"]
