"""`python -m tests.bench_probe`: what one probe costs, by kind of file.

Three files, made fresh in a temporary folder and probed from the page cache:

    1. a 22 KB WAV (11 s of 8-bit mono at 2 kHz, the size `make bench` uploads);
    2. a 5 MB CBR MP3 (LAME, 320 kbit/s) with an Info tag that matches its bytes: a header read;
    3. a 5 MB VBR MP3 (LAME -V0) written raw, with no Xing tag: every frame header is walked.

Each is probed repeatedly for about a second (at least 5 times); the median per call is printed,
for `probe(path)` and for `probe_bytes(data)` on the same bytes already in memory.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pipeline.content.probe import probe, probe_bytes
from pipeline.sandbox.samples import write_noise_wav
from tests.audiofiles import MP3, lame_mp3, xing

BUDGET = 1.0  # seconds of probing per file and function


def make_files(folder: Path) -> dict[str, Path]:
    wav = write_noise_wav(folder / "small.wav", 11.0, rate=2000)
    cbr_audio = lame_mp3(125, vbr_quality=None, kbps=320)
    frames = round(len(cbr_audio) / MP3.length(320))
    (folder / "cbr.mp3").write_bytes(xing(cbr_audio, frames, tag=b"Info", lame=None))
    (folder / "vbr.mp3").write_bytes(lame_mp3(250, vbr_quality=0))
    return {
        "22 KB WAV": wav,
        "5 MB CBR MP3, Info tag": folder / "cbr.mp3",
        "5 MB VBR MP3, no Xing tag": folder / "vbr.mp3",
    }


def median_us(call: Callable[[], object]) -> float:
    timings: list[float] = []
    deadline = time.perf_counter() + BUDGET
    while len(timings) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        files = make_files(Path(tmp))
        print(f"{'file':<28} {'bytes':>10} {'probe µs':>10} {'probe_bytes µs':>15}")
        for name, path in files.items():
            data = path.read_bytes()
            from_path = median_us(partial(probe, path))
            from_bytes = median_us(partial(probe_bytes, data))
            print(f"{name:<28} {len(data):>10,} {from_path:>10.0f} {from_bytes:>15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
