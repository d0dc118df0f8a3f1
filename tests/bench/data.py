"""Catalogues for the benchmarks, made fast: one pool of unique small WAVs (10.5 s of 8-bit noise
at 2 kHz, 21 KB each, so every one passes the probe and no two share bytes), and each catalogue
a tree of hard links into it (`song/dNN/tNNNNN.wav`, 500 files a folder). Hard links keep size
and mtime, so a catalogue is as unchanged for a rerun as a real one.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.sandbox.samples import write_noise_wav

PER_FOLDER = 500
SMALL_SECONDS = 10.5


def small_pool(root: Path, count: int, *, start: int = 0) -> list[Path]:
    """Unique small WAVs number `start` to `count` under `root`."""
    return [
        write_noise_wav(root / f"p{i // PER_FOLDER:03d}" / f"t{i:06d}.wav", SMALL_SECONDS, seed=i)
        for i in range(start, count)
    ]


def link_tree(pool: list[Path], root: Path, count: int) -> Path:
    """A catalogue of the first `count` pool files, hard-linked under `root/song/`."""
    for i, source in enumerate(pool[:count]):
        target = root / "song" / f"d{i // PER_FOLDER:03d}" / f"t{i:06d}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return root


def big_files(root: Path, count: int, *, seconds: float = 300, channels: int = 4) -> Path:
    """`count` WAVs of 53 MB (5 minutes, 44.1 kHz, 4 channels of 8-bit noise) under `root/song/`."""
    for i in range(count):
        write_noise_wav(
            root / "song" / f"big{i:02d}.wav",
            seconds,
            seed=10_000 + i,
            rate=44100,
            channels=channels,
        )
    return root


def file_list(root: Path, out: Path) -> Path:
    """Every file under `root`, one path a line, in name order (for xargs and the bare loop)."""
    paths = sorted(str(p) for p in root.rglob("*.wav"))
    out.write_text("".join(f"{p}\n" for p in paths))
    return out
