"""Writing WAV files: the canonical header of the WAVs we send after decoding, and RIFX.

The header is written by hand (no muxer), so the same samples always give the same bytes: no
LIST/INFO chunk, no encoder name, no time stamp. Which header, for what:

- integer samples, 1 or 2 channels: the 16-byte PCM `fmt ` (format 1), 44 bytes in all; the
  oldest and most widely read form, 24-bit and 96 kHz included;
- float samples, 1 or 2 channels: IEEE float (format 3) with an 18-byte `fmt ` and a `fact`
  chunk, as the WAV specification wants for every format but PCM;
- more than 2 channels: WAVE_FORMAT_EXTENSIBLE (0xFFFE) with the speaker mask, as Windows and
  ffmpeg write it; that is how a reader knows which channel is which.

RIFX is WAV with big-endian numbers (some old Mac and Java tools write it). FFmpeg misreads
16-bit RIFX as little-endian noise without an error, so it is converted here, sample bytes
reversed, before FFmpeg ever sees it; this needs no decoder at all.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import PermanentError

PCM, FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
MAX_RIFF = 0xFFFFFFFF  # a RIFF size is 32 bits: 4 GiB is the most a WAV holds
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class WavFormat:
    """What the header of a WAV says: format code 1 (PCM) or 3 (float), layout, depth."""

    code: int
    channels: int
    rate: int
    bits: int
    mask: int = 0  # speakers, for WAVE_FORMAT_EXTENSIBLE (more than 2 channels)

    @property
    def block(self) -> int:
        return self.channels * self.bits // 8


def wav_header(fmt: WavFormat, data_bytes: int) -> bytes:
    """The header of a WAV holding `data_bytes` of samples; its length depends only on `fmt`,
    so a placeholder can be written first and the real one over it at the end."""
    frames = data_bytes // fmt.block if fmt.block else 0
    base = struct.pack(
        "<HHIIHH", fmt.code, fmt.channels, fmt.rate, fmt.rate * fmt.block, fmt.block, fmt.bits
    )
    if fmt.channels > 2:
        body = struct.pack(
            "<HHIIHH", EXTENSIBLE, fmt.channels, fmt.rate, fmt.rate * fmt.block, fmt.block, fmt.bits
        )
        body += struct.pack("<HHI", 22, fmt.bits, fmt.mask) + struct.pack("<H", fmt.code)
        body += _GUID_TAIL
    elif fmt.code == FLOAT:
        body = base + struct.pack("<H", 0)
    else:
        body = base
    chunks = b"fmt " + struct.pack("<I", len(body)) + body
    if fmt.code == FLOAT or fmt.channels > 2:
        chunks += b"fact" + struct.pack("<II", 4, frames & 0xFFFFFFFF)
    riff = 4 + len(chunks) + 8 + data_bytes + (data_bytes & 1)
    if riff > MAX_RIFF:
        raise PermanentError("decoded audio is larger than a WAV can hold (4 GiB)")
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + chunks
        + b"data"
        + struct.pack("<I", data_bytes)
    )


# --- RIFX -------------------------------------------------------------------------------------


def is_rifx(head: bytes) -> bool:
    return head[:4] == b"RIFX" and head[8:12] == b"WAVE"


def read_rifx_header(handle: BinaryIO) -> tuple[WavFormat, int]:
    """The format and data size of a RIFX file; `handle` is left at the first sample."""
    head = handle.read(12)
    if not is_rifx(head):
        raise PermanentError("corrupt RIFX: no RIFX/WAVE header")
    fmt: WavFormat | None = None
    while len(chunk := handle.read(8)) == 8:
        cid, size = chunk[:4], struct.unpack(">I", chunk[4:])[0]
        if cid == b"data":
            if fmt is None:
                raise PermanentError("corrupt RIFX: no fmt chunk before the audio data")
            return fmt, size
        if cid == b"fmt ":
            fmt = _rifx_fmt(handle.read(size + (size & 1)))
        else:
            handle.seek(size + (size & 1), os.SEEK_CUR)
    raise PermanentError("corrupt RIFX: no data chunk")


def _rifx_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise PermanentError("corrupt RIFX: fmt chunk too short")
    code, channels, rate, _, _, bits = struct.unpack_from(">HHIIHH", body)
    if code == EXTENSIBLE and len(body) >= 26:
        code = struct.unpack_from(">H", body, 24)[0]  # the sub-format's first two bytes
    if code not in (PCM, FLOAT) or bits not in (8, 16, 24, 32, 64) or not channels or not rate:
        raise PermanentError(f"RIFX holding format {code:#06x} at {bits} bits is not converted")
    if code == FLOAT and bits not in (32, 64):
        raise PermanentError(f"corrupt RIFX: {bits}-bit float")
    return WavFormat(code, channels, rate, bits)


def rifx_to_wav(src: Path, dst: BinaryIO, check: Callable[[], None]) -> tuple[WavFormat, int]:
    """Write the little-endian WAV of the RIFX file `src` to `dst`: (its format, data bytes).
    A data chunk cut short is refused, as a truncated file is everywhere else. `check` is
    called between chunks (it raises to stop: a deadline, a run stopping)."""
    with src.open("rb") as handle:
        fmt, size = read_rifx_header(handle)
        present = os.fstat(handle.fileno()).st_size - handle.tell()
        if size > present:
            raise PermanentError(f"RIFX: data cut short ({present} of {size} bytes present)")
        size -= size % fmt.block
        if size == 0:
            raise PermanentError("RIFX holds 0 samples")
        fmt = dataclasses.replace(fmt, mask=0)
        dst.write(wav_header(fmt, size))
        width, left = fmt.bits // 8, size
        while left:
            check()
            chunk = handle.read(min(left, CHUNK - CHUNK % (width * 3)))
            if not chunk:
                raise PermanentError("RIFX: the file shrank while it was read")
            left -= len(chunk)
            dst.write(_swapped(chunk, width))
        if size & 1:
            dst.write(b"\0")
    return fmt, size


def _swapped(data: bytes, width: int) -> bytes:
    """Each `width`-byte sample's bytes in reverse order."""
    if width == 1:
        return data
    out = bytearray(len(data))
    for k in range(width):
        out[k::width] = data[width - 1 - k :: width]
    return bytes(out)
