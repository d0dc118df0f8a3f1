"""Audio files made by real encoders (sox, flac, ffmpeg, wavpack), for the decoder's tests.

Nothing is committed: each file is made on first use, once per test session, from a recipe of
command lines. The command-line tools come from Debian packages (`.ci/run` installs them); a
test that needs a missing one is skipped with a line naming the package (failed in CI). Noise
is seeded (`sox -R`), so every run makes the same files.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGES = {"sox": "sox", "flac": "flac", "ffmpeg": "ffmpeg", "ffprobe": "ffmpeg"}
PACKAGES["wavpack"] = "wavpack"
FF = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
SECONDS = "3"


def need(*tools: str) -> None:
    """Skip unless the tools are installed; in CI (INGEST_TEST_ENCODERS_REQUIRED) fail instead."""
    for name in tools:
        if shutil.which(name) is None:
            why = f"{name} is not installed (Debian package {PACKAGES.get(name, name)})"
            if os.environ.get("INGEST_TEST_ENCODERS_REQUIRED"):
                pytest.fail(why)
            pytest.skip(why)


def _sox_sources(d: Path) -> None:
    sox = ["sox", "-R", "-n"]
    s = SECONDS
    mixed = ["synth", s, "pinknoise", "synth", s, "sine", "mix", "440", "vol", "0.4"]
    run([*sox, "-r", "44100", "-b", "24", "-c", "2", str(d / "src24.wav"), *mixed])
    run(["sox", "-R", str(d / "src24.wav"), "-b", "16", str(d / "src16.wav"), "dither", "-s"])
    noise = ["synth", s, "pinknoise", "vol", "0.3"]
    run([*sox, "-r", "48000", "-b", "24", "-c", "6", str(d / "src24_6ch.wav"), *noise])
    run([*sox, "-r", "22050", "-b", "16", "-c", "1", str(d / "src16_mono.wav"), *noise])
    run([*sox, "-r", "96000", "-b", "24", "-c", "2", str(d / "src24_96k.wav"), *noise])
    floats = ["-b", "32", "-e", "floating-point", "-c", "2"]
    run(
        [*sox, "-r", "44100", *floats, str(d / "srcf32.wav"), "synth", s, "pinknoise", "vol", "0.5"]
    )


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _ff(src: str, *args: str) -> Callable[[Path, Path], None]:
    def make(d: Path, out: Path) -> None:
        run([*FF, "-i", str(d / src), *args, str(out)])

    return make


def _flac(src: str) -> Callable[[Path, Path], None]:
    def make(d: Path, out: Path) -> None:
        run(["flac", "-s", "-f", "--lax", "-o", str(out), str(d / src)])

    return make


def _wavpack(src: str) -> Callable[[Path, Path], None]:
    def make(d: Path, out: Path) -> None:
        run(["wavpack", "-q", "-y", str(d / src), "-o", str(out)])

    return make


def _sox(src: str, *args: str) -> Callable[[Path, Path], None]:
    def make(d: Path, out: Path) -> None:
        run(["sox", "-R", str(d / src), *args, str(out)])

    return make


# name -> (tools needed, recipe)
RECIPES: dict[str, tuple[tuple[str, ...], Callable[[Path, Path], None]]] = {
    "flac16.flac": (("flac",), _flac("src16.wav")),
    "flac24.flac": (("flac",), _flac("src24.wav")),
    "flac16_mono.flac": (("flac",), _flac("src16_mono.wav")),
    "flac24_6ch.flac": (("flac",), _flac("src24_6ch.wav")),
    "flac24_96k.flac": (("flac",), _flac("src24_96k.wav")),
    "alac16.m4a": (("ffmpeg",), _ff("src16.wav", "-c:a", "alac")),
    "alac24.m4a": (("ffmpeg",), _ff("src24.wav", "-c:a", "alac")),
    "aiff16.aiff": (("ffmpeg",), _ff("src16.wav", "-c:a", "pcm_s16be")),
    "aiff24.aiff": (("ffmpeg",), _ff("src24.wav", "-c:a", "pcm_s24be")),
    "aifc16.aifc": (("sox",), _sox("src16.wav", "-t", "aifc")),
    "aifc_f32.aifc": (("ffmpeg",), _ff("srcf32.wav", "-c:a", "pcm_f32be", "-f", "aiff")),
    "aifc_f64.aifc": (("ffmpeg",), _ff("srcf32.wav", "-c:a", "pcm_f64be", "-f", "aiff")),
    "aifc_sowt.aifc": (("ffmpeg",), _ff("src16.wav", "-c:a", "pcm_s16le", "-f", "aiff")),
    "wv16.wv": (("wavpack",), _wavpack("src16.wav")),
    "wv24.wv": (("wavpack",), _wavpack("src24.wav")),
    "wvf32.wv": (("wavpack",), _wavpack("srcf32.wav")),
    "tta16.tta": (("ffmpeg",), _ff("src16.wav", "-c:a", "tta")),
    "riff_be16.wav": (("sox",), _sox("src16.wav", "-B")),
    "riff_be24.wav": (("sox",), _sox("src24.wav", "-B")),
    "wav_ima.wav": (("ffmpeg",), _ff("src16.wav", "-c:a", "adpcm_ima_wav")),
    "wav_msadpcm.wav": (("ffmpeg",), _ff("src16.wav", "-c:a", "adpcm_ms")),
    "wav_gsm.wav": (("ffmpeg",), _ff("src16_mono.wav", "-ar", "8000", "-c:a", "libgsm_ms")),
    "wav_g726.wav": (("ffmpeg",), _ff("src16_mono.wav", "-ar", "8000", "-c:a", "g726")),
    "wav_mp3.wav": (
        ("ffmpeg",),
        _ff("src16.wav", "-c:a", "libmp3lame", "-b:a", "192k", "-f", "wav"),
    ),
    "aac.m4a": (("ffmpeg",), _ff("src16.wav", "-c:a", "aac", "-b:a", "192k")),
    "adts.aac": (("ffmpeg",), _ff("src16.wav", "-c:a", "aac", "-b:a", "128k")),
    "vorbis.ogg": (("ffmpeg",), _ff("src16.wav", "-c:a", "libvorbis", "-q:a", "5")),
    "opus.opus": (("ffmpeg",), _ff("src16.wav", "-c:a", "libopus", "-b:a", "128k")),
    "wma.wma": (("ffmpeg",), _ff("src16.wav", "-c:a", "wmav2", "-b:a", "192k")),
    "pass.mp3": (("ffmpeg",), _ff("src16.wav", "-c:a", "libmp3lame", "-b:a", "192k")),
    "flac384k.flac": (("ffmpeg",), _ff("src16_mono.wav", "-ar", "384000", "-c:a", "flac")),
}


class Encoded:
    """A folder of files made by the encoders, each made the first time it is asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sources = False

    def __call__(self, name: str) -> Path:
        out = self.folder / name
        if out.exists():
            return out
        if name.startswith("src"):
            self._make_sources()
            return out
        if name.startswith("rifx"):
            self._make_sources()
            write_rifx(self.folder / f"src{name[4:6]}.wav", out)
            return out
        tools, recipe = RECIPES[name]
        need(*tools)
        self._make_sources()
        recipe(self.folder, out)
        return out

    def _make_sources(self) -> None:
        need("sox")
        if not self._sources:
            _sox_sources(self.folder)
            self._sources = True


def wav_chunks(path: Path) -> tuple[tuple[int, int, int, int], bytes]:
    """((format code, channels, rate, bits), data) of a RIFF WAV, checked strictly: sizes
    consistent, the data chunk running to the end (with its pad byte)."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    i, fmt = 12, None
    while i < len(raw):
        cid, size = raw[i : i + 4], struct.unpack_from("<I", raw, i + 4)[0]
        if cid == b"fmt ":
            code, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, i + 8)
            if code == 0xFFFE:
                code = struct.unpack_from("<H", raw, i + 8 + 24)[0]
            fmt = (code, channels, rate, bits)
        if cid == b"data":
            assert fmt is not None and i + 8 + size + (size & 1) == len(raw)
            return fmt, raw[i + 8 : i + 8 + size]
        i += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def write_rifx(src: Path, out: Path) -> None:
    """A RIFX copy of the PCM WAV `src`, with a 16-byte fmt chunk (as old Mac tools wrote)."""
    (code, channels, rate, bits), data = wav_chunks(src)
    width = bits // 8
    swapped = bytearray(len(data))
    for k in range(width):
        swapped[k::width] = data[width - 1 - k :: width]
    fmt = struct.pack(
        ">HHIIHH", code, channels, rate, rate * channels * width, channels * width, bits
    )
    body = b"WAVE" + b"fmt " + struct.pack(">I", 16) + fmt
    body += b"data" + struct.pack(">I", len(swapped)) + bytes(swapped)
    out.write_bytes(b"RIFX" + struct.pack(">I", len(body)) + body)


def write_dsf(out: Path, seconds: float = 1.0) -> None:
    """A small DSF (DSD stream file) of 1-bit audio at 2.8224 MHz, written by hand: no Debian
    tool encodes DSD."""
    rate, channels, block = 2_822_400, 2, 4096
    samples = int(rate * seconds)
    blocks = -(-samples // (block * 8))
    data = bytes([0x69]) * (blocks * block * channels)  # 0x69: DSD's "silence" pattern
    fmt = struct.pack("<4sQIIIIIIQII", b"fmt ", 52, 1, 0, 2, channels, rate, 1, samples, block, 0)
    chunk = b"data" + struct.pack("<Q", 12 + len(data)) + data
    total = 28 + len(fmt) + len(chunk)
    out.write_bytes(b"DSD " + struct.pack("<QQQ", 28, total, 0) + fmt + chunk)
