"""The Converter's bounds and clean-up, on real FLACs: WAVs held on disk at once, the folder of
a killed run removed, everything removed at the end."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.content import decode
from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.content.probe import OtherFormat
from pipeline.run.convert import FOLDER_PREFIX, Converter, sweep_abandoned
from tests.encoders import need, run

pytestmark = pytest.mark.skipif(not decode.available(), reason="the decoder (av) is not installed")


def flac(path: Path, tag: int) -> Located:
    need("sox", "flac")
    src = path.with_suffix(".src.wav")
    run(["sox", "-R", "-n", "-r", "8000", "-b", "16", "-c", "1", str(src), "synth", "11", "sine"])
    run(["flac", "-s", "-f", f"--tag=N={tag}", "-o", str(path), str(src)])
    return Located("0" * 64, Body(size=path.stat().st_size, path=str(path)))


async def test_at_most_max_held_wavs_wait_on_disk(tmp_path: Path) -> None:
    converter = Converter(max_held=1, timeout=60, parent=str(tmp_path))
    other = OtherFormat("FLAC audio is not accepted", kind="FLAC")
    first, audio = await converter.convert(flac(tmp_path / "a.flac", 1), other)
    assert audio.format == "wav" and first.converted is not None
    assert first.converted.converted_from == "flac"
    second = asyncio.create_task(converter.convert(flac(tmp_path / "b.flac", 2), other))
    await asyncio.sleep(0.3)
    assert not second.done()  # waits for the first WAV to go
    assert first.temporary is not None and first.temporary.exists()
    first.discard()
    assert not first.temporary.exists()
    done, _ = await second
    folders = [p for p in tmp_path.iterdir() if p.name.startswith(FOLDER_PREFIX)]
    assert len(folders) == 1 and len(list(folders[0].iterdir())) == 1
    converter.close()
    assert not folders[0].exists()
    assert done.converted is not None and done.sent == done.converted.body  # the WAV is sent
    assert done.size == (tmp_path / "b.flac").stat().st_size  # the source's size is kept


def test_the_folders_of_killed_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"{FOLDER_PREFIX}{dead.pid}-x"
    live = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-y"
    other = tmp_path / "ingest-else"
    for folder in (gone, live, other):
        folder.mkdir()
        (folder / "a.wav").write_bytes(b"x")
    sweep_abandoned(str(tmp_path))
    assert not gone.exists() and live.exists() and other.exists()
