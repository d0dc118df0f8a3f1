"""MPEG audio frame headers: what one 32-bit word says, and where a real stream begins.

A header is 11 sync bits, then version, layer, CRC flag, bitrate index, sample-rate index,
padding, private bit, channel mode and flags. The frame's length follows from version, layer,
bitrate, sample rate and padding, so a stream can be walked from header to header without
decoding anything. Sync words are common in arbitrary bytes, so a stream is only believed where
`RUN` frames follow one another, each header in the same stream (`STREAM_MASK`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Literal

from pipeline.content.audio.reader import Reader

RUN = 4  # consecutive frames needed before a sync word is believed
# Bits that stay the same in every frame of one stream: sync, version, layer, sample rate.
STREAM_MASK = 0xFFFE0C00
# A sync word with a version, layer and bitrate that exist (a full check follows).
_SYNC = re.compile(rb"\xff[\xe2-\xe7\xf2-\xf7\xfa-\xff][\x00-\xef]")

Version = Literal["MPEG-1", "MPEG-2", "MPEG-2.5"]
Layer = Literal[1, 2, 3]

_VERSIONS: dict[int, Version] = {0b11: "MPEG-1", 0b10: "MPEG-2", 0b00: "MPEG-2.5"}
_LAYERS: dict[int, Layer] = {0b11: 1, 0b10: 2, 0b01: 3}
_RATES: dict[Version, tuple[int, int, int]] = {
    "MPEG-1": (44100, 48000, 32000),
    "MPEG-2": (22050, 24000, 16000),
    "MPEG-2.5": (11025, 12000, 8000),
}
# kbit/s by bitrate index 1..14 (0 is free format, 15 is invalid).
_BITRATES = {
    ("MPEG-1", 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    ("MPEG-1", 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    ("MPEG-1", 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    ("LSF", 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    ("LSF", 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES["LSF", 3] = _BITRATES["LSF", 2]


@dataclasses.dataclass(frozen=True)
class Header:
    word: int
    version: Version
    layer: Layer
    kbps: int  # 0 for free format
    rate: int
    mono: bool
    crc: bool
    length: int  # bytes of the whole frame; 0 for free format (not in the header)
    samples: int  # per channel in the frame

    @property
    def codec(self) -> str:
        return f"{self.version} Layer {'I' * self.layer}"

    @property
    def side_info(self) -> int:
        """Bytes of Layer III side information after the header (and CRC)."""
        if self.version == "MPEG-1":
            return 17 if self.mono else 32
        return 9 if self.mono else 17


def parse(word: int) -> Header | None:
    """The header in a big-endian 32-bit word, or None if it cannot be one."""
    version = _VERSIONS.get((word >> 19) & 0b11)
    layer = _LAYERS.get((word >> 17) & 0b11)
    bitrate_index, rate_index = (word >> 12) & 0xF, (word >> 10) & 0b11
    if word >> 21 != 0x7FF or not version or not layer or bitrate_index == 15 or rate_index == 3:
        return None
    rate = _RATES[version][rate_index]
    kbps = _bitrates(version, layer)[bitrate_index - 1] if bitrate_index else 0
    samples = _samples(version, layer)
    padding = (word >> 9) & 1
    length = _frame_length(layer, samples, kbps, rate, padding)
    mono, crc = (word >> 6) & 0b11 == 0b11, not (word >> 16) & 1
    return Header(word, version, layer, kbps, rate, mono, crc, length, samples)


def _bitrates(version: Version, layer: Layer) -> tuple[int, ...]:
    return _BITRATES["MPEG-1" if version == "MPEG-1" else "LSF", layer]


def _samples(version: Version, layer: Layer) -> int:
    if layer == 1:
        return 384
    return 576 if layer == 3 and version != "MPEG-1" else 1152


def _frame_length(layer: int, samples: int, kbps: int, rate: int, padding: int) -> int:
    if layer == 1:
        return (12 * kbps * 1000 // rate + padding) * 4 if kbps else 0
    return samples // 8 * kbps * 1000 // rate + padding if kbps else 0


@functools.cache
def length_table() -> tuple[int, ...]:
    """Frame length by header bits 9..20 (version, layer, CRC, bitrate, rate, padding): one
    lookup per frame while walking; 0 where those bits make no frame of known length. Built
    when an MP3 is first walked (4,096 headers parsed, about 5 ms), not by every run that
    imports this module."""
    lengths = []
    for bits in range(1 << 12):
        header = parse(0xFFE00000 | bits << 9)
        lengths.append(header.length if header else 0)
    return tuple(lengths)


def header_at(reader: Reader, offset: int) -> Header | None:
    word = reader.read(offset, 4)
    return parse(int.from_bytes(word, "big")) if len(word) == 4 else None


def run_at(reader: Reader, offset: int, end: int) -> Header | None:
    """The first header at `offset` if `RUN` frames of one stream follow from there (fewer if the
    stream ends exactly at `end`), else None."""
    first = header_at(reader, offset)
    if first is None or first.length == 0:
        return None
    position = offset
    for _ in range(RUN):
        header = header_at(reader, position)
        if header is None or header.word & STREAM_MASK != first.word & STREAM_MASK:
            return None
        if header.length == 0 or position + header.length > end:
            return None
        position += header.length
        if position == end:
            break
    return first


def find_run(reader: Reader, start: int, stop: int, end: int) -> tuple[int, Header] | None:
    """The first offset in [start, stop) where a run of frames begins, with its header."""
    block_size = 1 << 16
    for block_start in range(start, stop, block_size):
        block = reader.read(block_start, min(block_size, stop - block_start) + 2)
        for match in _SYNC.finditer(block):
            offset = block_start + match.start()
            if offset >= stop:
                break
            header = run_at(reader, offset, end)
            if header is not None:
                return offset, header
    return None
