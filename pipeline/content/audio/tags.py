"""Tags around MP3 audio: ID3v2 before it; ID3v1, APE, Lyrics3 and footed ID3v2 after it.

None of these bytes is audio. Leading tags are skipped by their declared size; trailing ones are
found from the end of the file, in any order, so that only the frames between are counted.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.content.audio.reader import Reader

_LYRICS3V1_MAX = 5100 + 11  # the format's own limit on its body, plus "LYRICSBEGIN"


def id3v2_size(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of `head` (header, body, footer), or 0 if none."""
    if len(head) < 10 or head[:3] != b"ID3" or 0xFF in head[3:5]:
        return 0
    if any(byte & 0x80 for byte in head[6:10]):
        return 0
    footer = 10 if head[5] & 0x10 else 0  # ID3v2.4 may repeat its header at the end
    return 10 + _synchsafe(head[6:10]) + footer


def _synchsafe(data: bytes) -> int:
    value = 0
    for byte in data:
        value = value << 7 | byte & 0x7F
    return value


def skip_id3v2(reader: Reader, offset: int) -> int:
    """The offset after the ID3v2 tags (some files carry several) starting at `offset`."""
    while size := id3v2_size(reader.read(offset, 10)):
        offset += size
    return offset


def audio_end(reader: Reader, start: int) -> int:
    """Where the audio ends: the end of the file less the tags found there."""
    end = reader.size
    while True:
        size = next((s for find in _TRAILING if 0 < (s := find(reader, end)) <= end - start), 0)
        if not size:
            return end
        end -= size


def _tail(reader: Reader, end: int, count: int) -> bytes:
    return reader.read(end - count, count) if end >= count else b""


def _id3v1(reader: Reader, end: int) -> int:
    return 128 if _tail(reader, end, 128)[:3] == b"TAG" else 0


def _id3v1_extended(reader: Reader, end: int) -> int:
    return 227 if _tail(reader, end, 227)[:4] == b"TAG+" else 0


def _ape(reader: Reader, end: int) -> int:
    footer = _tail(reader, end, 32)
    if footer[:8] != b"APETAGEX":
        return 0
    size = int.from_bytes(footer[12:16], "little")  # items and footer, not the header
    has_header = int.from_bytes(footer[20:24], "little") >> 31
    return size + 32 * has_header


def _lyrics3v2(reader: Reader, end: int) -> int:
    tail = _tail(reader, end, 15)
    if tail[6:] != b"LYRICS200" or not tail[:6].isdigit():
        return 0
    return int(tail[:6]) + 15


def _lyrics3v1(reader: Reader, end: int) -> int:
    if _tail(reader, end, 9) != b"LYRICSEND":
        return 0
    window = _tail(reader, end, min(end, _LYRICS3V1_MAX + 9))
    begin = window.rfind(b"LYRICSBEGIN")
    return len(window) - begin if begin >= 0 else 0


def _id3v2_footer(reader: Reader, end: int) -> int:
    footer = _tail(reader, end, 10)
    if footer[:3] != b"3DI" or any(byte & 0x80 for byte in footer[6:10]):
        return 0
    return _synchsafe(footer[6:10]) + 20


_TRAILING: tuple[Callable[[Reader, int], int], ...] = (
    _id3v1,
    _id3v1_extended,
    _ape,
    _lyrics3v2,
    _lyrics3v1,
    _id3v2_footer,
)
