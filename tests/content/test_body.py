"""Upload bodies: the bytes sent are the bytes hashed, or nothing is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.content import body as body_mod
from pipeline.content.body import Body
from pipeline.content.hashing import read_and_hash
from pipeline.core.errors import SourceChanged
from pipeline.transport.multipart import payload_of


class Collect:
    """Stands in for aiohttp's stream writer: keeps what the payload writes."""

    def __init__(self, on_write: object = None) -> None:
        self.data = bytearray()
        self.on_write = on_write

    async def write(self, chunk: bytes) -> None:
        self.data += chunk
        if callable(self.on_write):
            self.on_write(len(self.data))


def big_file(tmp_path: Path, size: int = 3 * body_mod.CHUNK + 123) -> Path:
    path = tmp_path / "big.wav"
    path.write_bytes(os.urandom(size))
    return path


async def test_a_small_file_is_sent_from_the_very_bytes_hashed(tmp_path: Path) -> None:
    path = tmp_path / "small.wav"
    path.write_bytes(b"x" * 1000)
    hashed = read_and_hash(path)
    path.write_bytes(b"y" * 1000)  # changed after hashing: what was hashed still goes out
    out = Collect()
    await payload_of(hashed.body, "audio/wav").write(out)  # type: ignore[arg-type]
    assert bytes(out.data) == b"x" * 1000


async def test_an_unchanged_large_file_is_streamed_whole(tmp_path: Path) -> None:
    path = big_file(tmp_path)
    hashed = read_and_hash(path)
    assert hashed.body.data is None
    out = Collect()
    await payload_of(hashed.body, "audio/wav").write(out)  # type: ignore[arg-type]
    assert bytes(out.data) == path.read_bytes()


async def test_a_file_that_grows_while_sent_is_cut_before_its_last_chunk(tmp_path: Path) -> None:
    path = big_file(tmp_path)
    hashed = read_and_hash(path)

    def append(sent: int) -> None:
        if sent == body_mod.CHUNK:
            with path.open("ab") as handle:
                handle.write(b"more")

    out = Collect(append)
    with pytest.raises(SourceChanged, match="changed since it was hashed"):
        await payload_of(hashed.body, "audio/wav").write(out)  # type: ignore[arg-type]
    assert len(out.data) < hashed.body.size  # the body never went out whole


async def test_a_file_rewritten_in_place_since_hashing_is_not_sent(tmp_path: Path) -> None:
    path = big_file(tmp_path)
    hashed = read_and_hash(path)
    os.utime(path, ns=(1, 1))  # same size, another modification time
    out = Collect()
    with pytest.raises(SourceChanged):
        await payload_of(hashed.body, "audio/wav").write(out)  # type: ignore[arg-type]
    assert not out.data


def test_a_file_still_being_written_while_hashed_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_file(tmp_path)
    real_fstat = os.fstat
    calls = []

    def fstat_growing(fd: int) -> os.stat_result:
        calls.append(fd)
        if len(calls) == 2:  # the look after reading: the copy went on meanwhile
            with path.open("ab") as handle:
                handle.write(b"more")
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat_growing)
    with pytest.raises(SourceChanged, match="still being written"):
        read_and_hash(path)


def test_body_reads_the_expected_size_exactly() -> None:
    assert payload_of(Body(size=3, data=b"abc"), "audio/wav").size == 3
