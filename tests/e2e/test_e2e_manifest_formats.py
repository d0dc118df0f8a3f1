"""End to end for manifests saved by spreadsheets: the CLI as a subprocess against the sandbox.

The files are the byte-for-byte samples of tests/spreadsheets.py. The two that say their own
encoding (a byte-order mark) run with no flag; the cp1252 one is refused before any work starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_wav
from tests.conftest import SandboxServer, export, run_cli
from tests.fileserver import FileServer
from tests.spreadsheets import CP1252_SEMICOLON, UTF8_BOM_SEMICOLON, UTF16_TABS

pytestmark = pytest.mark.e2e


def catalogue(folder: Path, *names: str) -> None:
    for seed, name in enumerate(names):
        write_wav(folder / name, 11, seed=seed)


def test_excel_unicode_text_utf16_with_tabs_is_ingested(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    catalogue(tmp_path, "Café del Mar.wav", "Niño.wav", "Ünïcödé.wav")
    (tmp_path / "catalogue.txt").write_bytes(UTF16_TABS)  # Excel names it .txt: --manifest
    result = run_cli("run", "--manifest", "catalogue.txt", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr

    records = {r["external_id"]: r for r in export(tmp_path)}
    assert {k: (r["status"], r["line"]) for k, r in records.items()} == {
        "A1": ("done", 2),
        "A2": ("done", 4),  # after a cell that holds a line break
        "A3": ("done", 5),
    }
    assert (records["A1"]["source"], records["A1"]["extra"]) == (
        "Café del Mar.wav",
        {"notes": "two\nlines"},
    )
    assert (records["A2"]["purpose"], records["A2"]["extra"]) == ("voice", {"notes": "€ 5"})
    assert records["A3"]["filename"] == "Ünïcödé.wav"
    assert len([r for r in sandbox.requests() if r["outcome"] == "ok"]) == 3


def test_excel_csv_utf8_with_a_mark_and_semicolons_is_ingested(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    catalogue(tmp_path, "Café del Mar.wav", "Niño.wav")
    catalogue(tmp_path / "served", "mix.wav")
    with FileServer(tmp_path / "served") as server:
        url = server.url("/files/mix.wav?take=1,2")
        data = UTF8_BOM_SEMICOLON.replace(b"https://h/mix?take=1,2", url.encode())
        (tmp_path / "catalogue.csv").write_bytes(data)
        result = run_cli("run", "catalogue.csv", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr

    records = {r["source"]: r for r in export(tmp_path)}
    assert {k: (r["status"], r["purpose"]) for k, r in records.items()} == {
        "Café del Mar.wav": ("done", "song"),
        "Niño.wav": ("done", "voice"),
        url: ("done", "instrumental"),  # its `,` is not a delimiter here
    }
    assert records["Café del Mar.wav"]["extra"] == {"Album": "Été"}
    assert records["Niño.wav"]["extra"] == {"Album": "Blue; Live"}


def test_an_excel_cp1252_manifest_is_refused_before_any_work(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    catalogue(tmp_path, "Café del Mar.wav")
    (tmp_path / "catalogue.csv").write_bytes(CP1252_SEMICOLON)
    result = run_cli("run", "catalogue.csv", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 2
    assert result.stderr == (
        "ingest: manifest catalogue.csv: line 2 is not UTF-8 (byte 0xe9 after 'Caf'); "
        "if it was saved by Excel, pass --manifest-encoding cp1252\n"
    )
    assert sandbox.requests() == []
    assert not (tmp_path / "ingest.db").exists()


def test_an_excel_cp1252_manifest_is_ingested_with_the_encoding_flag(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    catalogue(tmp_path, "Café del Mar.wav", "Night; Day.wav", "naïve/Goût.wav")
    (tmp_path / "catalogue.csv").write_bytes(CP1252_SEMICOLON)
    args = ("run", "catalogue.csv", "--api-url", sandbox.url, "--manifest-encoding", "cp1252")
    result = run_cli(*args, cwd=tmp_path)
    assert result.code == 0, result.stderr
    records = {r["source"]: r for r in export(tmp_path)}
    assert {k: r["status"] for k, r in records.items()} == {
        "Café del Mar.wav": "done",
        "Night; Day.wav": "done",
        "naïve/Goût.wav": "done",
    }
    assert records["Café del Mar.wav"]["extra"]["price"] == "€ 1,99"
    sent = sorted(r["filename"] for r in sandbox.requests() if r["outcome"] == "ok")
    assert sent == ["Café del Mar.wav", "Goût.wav", "Night; Day.wav"]  # raw UTF-8 on the wire


def test_an_unknown_manifest_encoding_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "catalogue.csv").write_bytes(CP1252_SEMICOLON)
    result = run_cli("run", "catalogue.csv", "--manifest-encoding", "klingon", cwd=tmp_path)
    assert result.code == 2
    assert result.stderr == (
        "ingest: unknown manifest encoding 'klingon' (try utf-8, cp1252, latin-1 or utf-16)\n"
    )
