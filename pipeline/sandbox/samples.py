"""Real, small audio files for the demo, the benchmarks and the tests.

WAV files are PCM written with the standard `wave` module. MP3 files are built frame by frame:
MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, with zero side information (every decoder plays that as
silence) and a per-file seed in the ancillary bytes, so that no two generated files share bytes
unless asked to.
"""

from __future__ import annotations

import math
import random
import struct
import wave
from pathlib import Path

MP3_FRAME_HEADER = b"\xff\xfb\x90\x00"  # MPEG-1, Layer III, no CRC, 128 kbit/s, 44100 Hz, stereo
MP3_FRAME_BYTES = 417  # 144 * 128000 / 44100, no padding
MP3_FRAME_SECONDS = 1152 / 44100
MP3_SIDE_INFO = 32  # stereo MPEG-1


def write_wav(path: Path, seconds: float, *, seed: int = 0, rate: int = 8000) -> Path:
    """Mono 8-bit PCM: a tone whose pitch depends on `seed`, so files differ."""
    rng = random.Random(seed)
    freq = 220.0 + (seed % 500)
    frames = int(seconds * rate)
    step = 2 * math.pi * freq / rate
    samples = bytes(
        max(0, min(255, 128 + int(60 * math.sin(step * i)) + rng.randint(-2, 2)))
        for i in range(frames)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(samples)
    return path


def mp3_bytes(seconds: float, *, seed: int = 0) -> bytes:
    """A playable (silent) MP3 stream of about `seconds`."""
    rng = random.Random(seed)
    count = max(1, round(seconds / MP3_FRAME_SECONDS))
    ancillary = MP3_FRAME_BYTES - len(MP3_FRAME_HEADER) - MP3_SIDE_INFO
    frames = []
    for _ in range(count):
        frames.append(MP3_FRAME_HEADER + bytes(MP3_SIDE_INFO) + rng.randbytes(ancillary))
    return b"".join(frames)


def write_mp3(path: Path, seconds: float, *, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mp3_bytes(seconds, seed=seed))
    return path


def write_bad_files(folder: Path) -> list[Path]:
    """One of each kind the probe must refuse, all with audio extensions."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "empty.wav": b"",
        "not-audio.mp3": b"this is a text file, not an mp3\n" * 40,
        "lossless.flac": b"fLaC" + bytes(2000),
        "aac-in-mp4.m4a": b"\x00\x00\x00\x20ftypM4A " + bytes(2000),
    }
    paths = []
    for name, data in bad.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    paths.append(write_wav(folder / "too-short.wav", 3.0, seed=9001))
    paths.append(write_mp3(folder / "too-long.mp3", 620.0, seed=9002))
    return paths


def make_catalogue(root: Path, *, per_purpose: int = 4, seconds: float = 11.5) -> dict[str, int]:
    """A catalogue folder: song/, voice/, instrumental/ with WAV and MP3 files, one duplicate,
    bad files, cover art and a cue sheet. Returns counts by kind."""
    seed = 1
    for purpose in ("song", "voice", "instrumental"):
        for i in range(per_purpose):
            folder = root / purpose / f"album-{i % 2}"
            if i % 2:
                write_mp3(folder / f"track-{i:02d}.mp3", seconds, seed=seed)
            else:
                write_wav(folder / f"track-{i:02d}.wav", seconds, seed=seed)
            seed += 1
        (root / purpose / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    # The same bytes under a second name: uploaded once, both sources get the ids.
    first = root / "song" / "album-0" / "track-00.wav"
    (root / "song" / "copies").mkdir(parents=True, exist_ok=True)
    (root / "song" / "copies" / "track-00-copy.wav").write_bytes(first.read_bytes())
    (root / "song" / "album-0" / "album.cue").write_text("FILE track-00.wav WAVE\n")
    bad = write_bad_files(root / "song" / "rejects")
    return {"good": 3 * per_purpose, "duplicates": 1, "bad": len(bad)}


def write_int16_wav(path: Path, seconds: float, *, rate: int = 8000) -> Path:
    """16-bit silence; used where a different sample width matters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return path


def write_noise_wav(
    path: Path, seconds: float, *, seed: int = 0, rate: int = 2000, channels: int = 1
) -> Path:
    """Mono/stereo 8-bit noise, fast to generate in bulk (benchmarks) and unique per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(1)
        out.setframerate(rate)
        remaining = frames * channels
        while remaining:
            step = min(remaining, 1 << 20)
            out.writeframesraw(rng.randbytes(step))
            remaining -= step
    return path
