"""End to end for manifests: the CLI as a subprocess, a real file server, the sandbox."""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_mp3, write_wav
from tests.conftest import SandboxServer, export, run_cli
from tests.fileserver import FileServer

pytestmark = pytest.mark.e2e


def write_manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_urls_and_paths_mixed_with_bad_rows(tmp_path: Path, sandbox: SandboxServer) -> None:
    served = tmp_path / "served"
    local = tmp_path / "local"
    files = [write_wav(served / f"u{i}.wav", 11, seed=i) for i in range(4)]
    files += [write_mp3(local / f"p{i}.mp3", 11, seed=100 + i) for i in range(3)]
    (served / "same-as-p0.mp3").write_bytes(files[4].read_bytes())
    with FileServer(served, slow_seconds=8) as server:
        rows = [
            {
                "source": server.url("/files/u0.wav"),
                "purpose": "song",
                "external_id": "A0",
                "isrc": "X0",
            },
            {"source": server.url("/hop/3/u1.wav"), "purpose": "voice", "external_id": "A1"},
            {"source": server.url("/flaky/u2.wav"), "purpose": "instrumental", "external_id": "A2"},
            {"source": server.url("/files/u3.wav"), "purpose": "song", "external_id": "A3"},
            {"source": server.url("/files/u3.wav"), "purpose": "song", "external_id": "A3b"},
            {"source": "local/p0.mp3", "purpose": "song", "external_id": "B0"},
            {
                "source": server.url("/files/same-as-p0.mp3"),
                "purpose": "song",
                "external_id": "B0-url",
            },
            {"source": "local/p1.mp3", "purpose": "voice", "external_id": "B1"},
            {"source": "local/p2.mp3", "purpose": "", "external_id": "B2"},
            {"source": server.url("/missing"), "purpose": "song", "external_id": "E404"},
            {"source": server.url("/forbidden"), "purpose": "song", "external_id": "E403"},
            {"source": server.url("/loop"), "purpose": "song", "external_id": "Eloop"},
            {"source": server.url("/huge"), "purpose": "song", "external_id": "Ehuge"},
            {"source": server.url("/huge-declared"), "purpose": "song", "external_id": "Ecl"},
            {"source": server.url("/slow/u0.wav"), "purpose": "voice", "external_id": "Eslow"},
            {"source": "ftp://example.invalid/x.wav", "purpose": "song", "external_id": "Eftp"},
            {"source": "local/p1.mp3", "purpose": "podcast", "external_id": "Epurpose"},
            {"source": "", "purpose": "song", "external_id": "Eempty"},
            {"source": "local/nope.wav", "purpose": "song", "external_id": "Emissing"},
        ]
        write_manifest(tmp_path / "catalogue.csv", rows)
        started = time.monotonic()
        args = ("run", "catalogue.csv", "--purpose", "instrumental", "--api-url", sandbox.url)
        result = run_cli(*args, "--timeout", "2", "--max-attempts", "2", "--max-file-size", "20MB",
                         cwd=tmp_path)  # fmt: skip
        elapsed = time.monotonic() - started
        assert result.code == 1, result.stderr
        assert elapsed < 60

        records = {r["external_id"]: r for r in export(tmp_path)}
        ok = [r for r in sandbox.requests() if r["outcome"] == "ok"]
        issued = {(r["sha256"], r["purpose"]): r for r in ok}
        assert len(ok) == len(issued) == 7  # u0 u1 u2 u3 p0 p1 p2; u3 twice and p0 by URL once
        for key in ("A0", "A1", "A2", "A3", "A3b", "B0", "B0-url", "B1", "B2"):
            record = records[key]
            assert record["status"] == "done", record
            sent = issued[(record["sha256"], record["purpose"])]
            assert (record["voice_id"], record["instrumental_id"]) == (
                sent["voice_id"],
                sent["instrumental_id"],
            )
        assert records["B2"]["purpose"] == "instrumental"  # the flag fills an empty cell
        assert records["A0"]["extra"] == {"isrc": "X0"}
        assert records["B0"]["source"] == "local/p0.mp3"  # exactly as written
        assert records["B0"]["sha256"] == sha(files[4]) == records["B0-url"]["sha256"]
        reasons = {key: records[key]["error"] for key in records if key.startswith("E")}
        assert all(records[k]["status"] == "failed" for k in reasons)
        assert "HTTP 404" in reasons["E404"] and "HTTP 403" in reasons["E403"]
        assert "redirects" in reasons["Eloop"]
        assert "max-file-size" in reasons["Ehuge"] and "max-file-size" in reasons["Ecl"]
        assert "timed out" in reasons["Eslow"] and records["Eslow"]["retryable"]
        assert "unsupported scheme 'ftp'" in reasons["Eftp"]
        assert "unknown purpose 'podcast'" in reasons["Epurpose"]
        assert reasons["Eempty"] == "empty source"
        assert "No such file" in reasons["Emissing"]
        assert records["Eempty"]["line"] == 19

        downloads = sum(server.hits.values())
        requests = len(sandbox.requests())
        again = run_cli(*args, "--timeout", "2", "--max-attempts", "1", cwd=tmp_path)
        # Only the slow row (timed out: retryable) is fetched again; nothing is uploaded.
        assert set(server.hits) and sum(server.hits.values()) - downloads == 1
        assert len(sandbox.requests()) == requests
        assert again.code == 6, again.stderr


def test_temporary_files_are_removed(tmp_path: Path, sandbox: SandboxServer) -> None:
    served = tmp_path / "served"
    write_wav(served / "a.wav", 11)
    (served / "bad.wav").write_bytes(b"not audio")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with FileServer(served) as server:
        write_manifest(
            tmp_path / "m.csv",
            [
                {"url": server.url("/files/a.wav"), "purpose": "song"},
                {"url": server.url("/files/bad.wav"), "purpose": "song"},
                {"url": server.url("/huge"), "purpose": "song"},
            ],
        )
        env_result = run_cli(
            "run",
            "m.csv",
            "--api-url",
            sandbox.url,
            "--max-file-size",
            "1MB",
            cwd=tmp_path,
            env={**__import__("tests.conftest").conftest.cli_env(), "TMPDIR": str(scratch)},
        )
    assert env_result.code == 1, env_result.stderr
    assert list(scratch.iterdir()) == []


def test_a_slow_download_does_not_hold_an_upload_slot(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    served = tmp_path / "served"
    write_wav(served / "slow.wav", 11, seed=99)
    rows = [{"source": "", "purpose": "voice"}]
    for i in range(5):
        write_wav(tmp_path / "local" / f"l{i}.wav", 11, seed=i)
        rows.append({"source": f"local/l{i}.wav", "purpose": "voice"})
    with FileServer(served, slow_seconds=4) as server:
        rows[0]["source"] = server.url("/slow/slow.wav")
        write_manifest(tmp_path / "m.csv", rows)
        result = run_cli(
            "run",
            "m.csv",
            "--api-url",
            sandbox.url,
            "--concurrency",
            "1",
            "--timeout",
            "10",
            cwd=tmp_path,
        )
    assert result.code == 0, result.stderr
    uploads = {r["filename"]: r["ts"] for r in sandbox.requests() if r["outcome"] == "ok"}
    assert len(uploads) == 6
    assert all(uploads[f"l{i}.wav"] < uploads["slow.wav"] for i in range(5))
