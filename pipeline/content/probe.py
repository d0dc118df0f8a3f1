"""What the bytes of a file are, before any API call is spent on it.

The service takes WAV and MP3 only, longer than 10 s and at most 10 min. `probe()` tells the
container from the first bytes (never the file name), then measures the audio the way a full
decode would play it (`pipeline.content.audio`): a header's length is believed only where the bytes
present agree with it, otherwise the audio is counted. Only headers are read (all MP3 frame
headers where the length must be counted), a few kilobytes at a time, so memory does not grow
with file size. `probe_bytes()` does the same on a file already in memory. Anything unacceptable
raises `PermanentError` with a precise, user-facing reason; `OtherFormat` (one of them) when it
is audio in a format a decoder may read and convert (`pipeline.content.decode`).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.content.audio import mp3, wav
from pipeline.content.audio.info import CONTENT_TYPES, AudioInfo, LengthFrom, OtherFormat
from pipeline.content.audio.reader import BytesReader, FileReader, Reader
from pipeline.content.audio.tags import skip_id3v2
from pipeline.core.errors import PermanentError

__all__ = [
    "CONTENT_TYPES",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "AudioInfo",
    "LengthFrom",
    "OtherFormat",
    "measure",
    "measure_bytes",
    "probe",
    "probe_bytes",
    "sniff",
]

MIN_SECONDS = 10.0  # the service wants strictly more than this
MAX_SECONDS = 600.0  # and at most this

# Formats we recognise but the service refuses, so the reason can name them (and a decoder
# may convert them).
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg (Vorbis/Opus)"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "WMA/ASF"),
    (0, b"#!AMR", "AMR"),
    (0, b"MThd", "MIDI"),
    (0, b"RIFX", "RIFX (big-endian WAV)"),
    (0, b"wvpk", "WavPack"),
    (0, b"MAC ", "APE (Monkey's Audio)"),
    (0, b"TTA1", "TTA"),
    (0, b"tBaK", "TAK"),
    (0, b"ajkg", "Shorten"),
    (0, b"caff", "CAF"),
    (0, b".snd", "AU"),
    (0, b"riff\x2e\x91\xcf\x11", "Wave64"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"DSD ", "DSF (DSD)"),
    (0, b"FRM8", "DSDIFF (DSD)"),
    (0, b"\x0b\x77", "AC-3"),
)
_NOT_DECODED = ("MIDI",)  # notes, not sound: no decoder makes audio of them
_MPEG_KINDS = ("mp3", "MPEG audio layer I/II", "")  # checked frame by frame in `mp3`


def sniff(head: bytes) -> str:
    """Name the container from the first bytes: 'wav', 'mp3', another format's name, or ''."""
    if head[:4] in wav.FORMS and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    for offset, magic, name in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x3
        if layer == 0b01:
            return "mp3"
        if layer == 0b00:
            return "AAC (ADTS)"
        return "MPEG audio layer I/II"
    return ""


def probe(path: Path) -> AudioInfo:
    """Return what `path` holds, or raise PermanentError saying why it cannot be uploaded."""
    return _within_limits(measure(path))


def probe_bytes(data: bytes) -> AudioInfo:
    """`probe` for a file already read into memory: the same verdicts on the same bytes."""
    return _within_limits(measure_bytes(data))


def measure(path: Path) -> AudioInfo:
    """Format, codec and length of `path`, whatever the length; PermanentError if not WAV/MP3."""
    try:
        with path.open("rb") as handle:
            return _measure(FileReader(handle))
    except OSError as exc:
        raise PermanentError(f"cannot read file: {exc.strerror or exc}") from exc


def measure_bytes(data: bytes) -> AudioInfo:
    return _measure(BytesReader(data))


def _measure(reader: Reader) -> AudioInfo:
    if reader.size == 0:
        raise PermanentError("empty file")
    start = skip_id3v2(reader, 0)
    kind = sniff(reader.read(start, 16))
    if kind == "wav":
        return wav.measure(reader, start)
    if kind in _MPEG_KINDS:
        return mp3.measure(reader, start)
    reason = f"{kind} audio is not accepted (only WAV or MP3)"
    if kind in _NOT_DECODED:
        raise PermanentError(reason)
    raise OtherFormat(reason, kind=kind)


def _within_limits(info: AudioInfo) -> AudioInfo:
    if info.duration <= MIN_SECONDS:
        shown = _seconds(info.duration, MIN_SECONDS)
        raise PermanentError(f"too short: {shown} s (must be longer than 10 s)")
    if info.duration > MAX_SECONDS:
        shown = _seconds(info.duration, MAX_SECONDS)
        raise PermanentError(f"too long: {shown} s (must be at most 10 min)")
    return info


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
