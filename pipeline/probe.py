"""What the bytes of a file are, before any API call is spent on it.

The service takes WAV and MP3 only, longer than 10 s and at most 10 min. `probe()` reads the
first bytes to tell the container (never the file name), then lets mutagen read the headers for
the duration. Only headers are read, so memory does not grow with file size. Anything unacceptable
raises `PermanentError` with a precise, user-facing reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mutagen import MutagenError
from mutagen.mp3 import MP3
from mutagen.wave import WAVE

from pipeline.errors import PermanentError

MIN_SECONDS = 10.0  # the service wants strictly more than this
MAX_SECONDS = 600.0  # and at most this

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}

# Formats we recognise but the service refuses, so the reason can name them.
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg (Vorbis/Opus)"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "WMA/ASF"),
    (0, b"#!AMR", "AMR"),
    (0, b"MThd", "MIDI"),
)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    format: str  # "wav" | "mp3"
    duration: float  # seconds

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def sniff(head: bytes) -> str:
    """Name the container from the first bytes: 'wav', 'mp3', another format's name, or ''."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    for offset, magic, name in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:3] == b"ID3":
        return _sniff_after_id3(head)
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x3
        if layer == 0b01:
            return "mp3"
        if layer == 0b00:
            return "AAC (ADTS)"
        return "MPEG audio layer I/II"
    return ""


def _sniff_after_id3(head: bytes) -> str:
    if len(head) < 10:
        return ""
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    rest = head[10 + size :]
    # A tag longer than what we read: trust the tag, mutagen checks the frames.
    return sniff(rest) if len(rest) >= 12 else "mp3"


def probe(path: Path, *, head_size: int = 65536) -> AudioInfo:
    """Return what `path` holds, or raise PermanentError saying why it cannot be uploaded."""
    try:
        with path.open("rb") as handle:
            head = handle.read(head_size)
    except OSError as exc:
        raise PermanentError(f"cannot read file: {exc.strerror or exc}") from exc
    if not head:
        raise PermanentError("empty file")
    kind = sniff(head)
    if kind not in CONTENT_TYPES:
        if kind:
            raise PermanentError(f"{kind} audio is not accepted (only WAV or MP3)")
        raise PermanentError("not audio: the bytes are neither WAV nor MP3")
    duration = _duration(path, kind)
    if duration <= MIN_SECONDS:
        shown = _seconds(duration, MIN_SECONDS)
        raise PermanentError(f"too short: {shown} s (must be longer than 10 s)")
    if duration > MAX_SECONDS:
        shown = _seconds(duration, MAX_SECONDS)
        raise PermanentError(f"too long: {shown} s (must be at most 10 min)")
    return AudioInfo(format=kind, duration=duration)


def _seconds(value: float, limit: float) -> str:
    """`value` with the fewest decimals (at least one) that still compare to `limit` as it
    does: 600.04 s shows as "600.04", never "600.0", and 9.996 s as "9.996", never "10.0"."""
    side = (value > limit) - (value < limit)
    for places in range(1, 10):
        text = f"{value:.{places}f}"
        shown = float(text)
        if (shown > limit) - (shown < limit) == side:
            return text
    return repr(value)


def _duration(path: Path, kind: str) -> float:
    try:
        info = (WAVE(path) if kind == "wav" else MP3(path)).info  # type: ignore[no-untyped-call]
    except (MutagenError, OSError, ValueError, EOFError) as exc:
        raise PermanentError(f"corrupt {kind.upper()}: {exc}") from exc
    if kind == "mp3" and getattr(info, "layer", 3) != 3:
        raise PermanentError("MPEG audio layer I/II is not accepted (only WAV or MP3)")
    length = float(getattr(info, "length", 0.0) or 0.0)
    if length <= 0:
        raise PermanentError(f"corrupt {kind.upper()}: no audio data")
    return length
