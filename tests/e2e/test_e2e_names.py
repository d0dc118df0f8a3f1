"""End to end: any name a filesystem can hold is uploaded or recorded, never stops the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.core.names import path_bytes, wire_filename
from pipeline.sandbox.samples import write_wav
from tests.conftest import SandboxServer, export, run_cli

pytestmark = pytest.mark.e2e

HOSTILE = [
    "Café del Mar.wav".encode(),
    "Cafe\u0301 NFD.wav".encode(),
    b"Caf\xe9 latin1.wav",
    b"new\nline.wav",
    b"ctrl\x01\x1b.wav",
    b'quote " and \\ backslash.wav',
    b"50% off; name=x.wav",
    "\u00e9".encode() * 125 + b".wav",  # 254 bytes
]


def test_hostile_names_are_all_uploaded_kept_losslessly_and_skipped_on_rerun(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    folder = tmp_path / "cat" / "song"
    folder.mkdir(parents=True)
    for seed, raw in enumerate(HOSTILE):
        write_wav(Path(os.fsdecode(bytes(folder) + b"/" + raw)), 10.5, seed=seed)
    first = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert first.code == 0, first.stderr
    assert "Traceback" not in first.stderr

    sent = sorted(r["filename_sent"] for r in sandbox.requests() if r["outcome"] == "ok")
    assert sent == sorted(wire_filename(os.fsdecode(raw)) for raw in HOSTILE)
    records = export(tmp_path)
    assert all(r["status"] == "done" for r in records)
    on_disk = sorted(bytes(folder) + b"/" + raw for raw in HOSTILE)
    assert sorted(path_bytes(r["source"]) for r in records) == on_disk

    second = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert second.code == 0, second.stderr
    assert len(sandbox.requests()) == len(HOSTILE)  # nothing sent again, nothing rehashed
    assert f"skipped, done     {len(HOSTILE)}" in second.stdout
