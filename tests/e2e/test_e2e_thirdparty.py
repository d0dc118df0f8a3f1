"""End to end against the second stand-in (Werkzeug, python-multipart): the real CLI as a
subprocess, hostile names, and the pages that proxies, CDNs and firewalls answer with."""

from __future__ import annotations

import collections
import os
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.names import wire_filename
from pipeline.sandbox.samples import write_wav
from tests.conftest import CliResult, export, run_cli
from tests.multipart_readers import multipart_reads, werkzeug_reads
from tests.thirdparty import ThirdPartyServer, running

pytestmark = pytest.mark.e2e

HOSTILE = [
    b"Caf\xe9 latin1.wav",
    b"new\nline.wav",
    b"ctrl\x01\x1b\x7f.wav",
    b'quote " and \\ backslash.wav',
    b"50% off; name=x.wav",
    "Cafe\u0301 NFD.wav".encode(),
    "Caf\u00e9 NFC \U0001f3b5.wav".encode(),
    "\u00e9".encode() * 125 + b".wav",  # 254 bytes
]


@pytest.fixture
def thirdparty() -> Iterator[ThirdPartyServer]:
    with running() as server:
        yield server


def hostile_folder(tmp_path: Path) -> list[bytes]:
    folder = os.fsencode(tmp_path / "cat" / "song")
    os.makedirs(folder)
    for seed, raw in enumerate(HOSTILE):
        write_wav(Path(os.fsdecode(folder + b"/" + raw)), 10.5, seed=seed)
    return HOSTILE


def write_noise_wav(path: Path, size: int) -> Path:
    """A WAV of about `size` bytes: 8 kHz 16-bit mono noise (fast to make at any size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(os.urandom((size - 44) // 2 * 2))
    return path


def songs(tmp_path: Path, count: int) -> list[Path]:
    return [write_wav(tmp_path / "cat" / "song" / f"t{i}.wav", 10.5, seed=i) for i in range(count)]


def run(tmp_path: Path, server: ThirdPartyServer, *flags: str) -> CliResult:
    return run_cli("run", "cat", "--api-url", server.url, *flags, cwd=tmp_path)


def test_hostile_names_reach_werkzeug_and_python_multipart_as_wire_filename_once_each(
    tmp_path: Path, thirdparty: ThirdPartyServer
) -> None:
    names = hostile_folder(tmp_path)
    first = run(tmp_path, thirdparty)
    assert first.code == 0, first.stderr
    assert "Traceback" not in first.stderr

    received = thirdparty.uploads()
    sent = sorted(wire_filename(os.fsdecode(raw)) for raw in names)
    prefix = 'form-data; name="file"; filename="'
    on_wire = [f["disposition"].encode("latin-1").decode() for f in received]
    assert sorted(on_wire) == sorted(f'{prefix}{name}"' for name in sent)  # once each
    assert sorted(f["filename_werkzeug"] for f in received) == sorted(map(werkzeug_reads, sent))
    assert sorted(f["filename_multipart"] for f in received) == sorted(map(multipart_reads, sent))
    assert all(f["bytes_agree"] for f in received)
    ledger = {(r["filename"], r["sha256"]) for r in export(tmp_path) if r["status"] == "done"}
    pairs = zip(on_wire, received, strict=True)
    as_sent = {(d.removeprefix(prefix)[:-1], f["sha256"]) for d, f in pairs}
    assert as_sent == ledger  # the ledger keeps the name as sent
    assert len(ledger) == len(names)

    second = run(tmp_path, thirdparty)
    assert second.code == 0, second.stderr
    assert len(thirdparty.requests()) == len(names)  # the rerun sent nothing


def test_a_cdn_block_page_stops_the_run_naming_what_answered(tmp_path: Path) -> None:
    songs(tmp_path, 3)
    with running(mode="cdn-403") as cdn:
        result = run(tmp_path, cdn)
    assert result.code == 5, result.stderr
    assert "Traceback" not in result.stderr
    assert "HTTP 403" in result.stderr
    assert "text/html" in result.stderr
    assert '"Attention Required! | Cloudflare"' in result.stderr
    assert {r["status"] for r in export(tmp_path)} == {"pending"}


def test_a_proxy_413_fails_the_entry_naming_its_size_and_who_refused(tmp_path: Path) -> None:
    big = write_noise_wav(tmp_path / "cat" / "song" / "long take.wav", 1_500_000)
    with running(mode="nginx-413") as nginx:
        result = run(tmp_path, nginx)
        sent = len(nginx.requests())
    assert result.code == 1, result.stderr
    assert sent == 1  # not retried
    (record,) = export(tmp_path)
    assert record["status"] == "failed" and not record["retryable"]
    assert f"{big.stat().st_size / 1e6:.1f} MB" == "1.5 MB" in record["error"]
    assert "the service or a proxy" in record["error"]
    assert "413 Request Entity Too Large" in record["error"]


def test_a_bad_gateway_is_retried_then_left_for_the_next_run(tmp_path: Path) -> None:
    songs(tmp_path, 2)
    with running(mode="gateway-502") as gateway:
        result = run(tmp_path, gateway, "--max-attempts", "3")
        tries = collections.Counter(r["file"]["filename_werkzeug"] for r in gateway.requests())
    assert result.code == 6, result.stderr
    assert "Traceback" not in result.stderr
    assert tries == {"t0.wav": 3, "t1.wav": 3}
    assert "left for next run 2" in result.stdout
    records = export(tmp_path)
    assert all(r["status"] == "failed" and r["retryable"] for r in records)
    assert all('"502 Bad Gateway"' in r["error"] for r in records)

    with running() as service:  # the gateway is back: a plain run takes them again
        again = run(tmp_path, service)
        assert again.code == 0, again.stderr  # 0: every entry is done
        assert len(service.uploads()) == 2


def test_the_service_saying_no_credits_stops_the_run_saying_so(tmp_path: Path) -> None:
    songs(tmp_path, 2)
    with running(mode="no-credits") as service:
        result = run(tmp_path, service)
    assert result.code == 5, result.stderr
    assert "Traceback" not in result.stderr
    assert "out of credits or not allowed" in result.stderr
    assert "Insufficient credits" in result.stderr  # the service's own words
    assert {r["status"] for r in export(tmp_path)} == {"pending"}
