"""WAV (RIFF, RF64, BW64): which codec the data holds, and how many seconds are really there.

The chunks are walked from the start (LIST, fact, bext, JUNK... are skipped, odd sizes padded)
to `fmt ` and `data`. The data size in the header is believed only when the file holds that
many bytes: streaming writers leave 0 or 0xFFFFFFFF there ("until the end of the file", as
ffmpeg reads it), and a file cut short holds less than it says. RF64/BW64 keep the real 64-bit
size in `ds64`.

Only uncompressed WAV is sent (see `SENT`); every other codec is refused by name, because the
service takes WAV to mean PCM-like data and would measure the rest wrongly.
"""

from __future__ import annotations

import dataclasses
import struct

from pipeline.content.audio.info import AudioInfo, LengthFrom, OtherFormat
from pipeline.content.audio.reader import Reader
from pipeline.core.errors import PermanentError

FORMS = (b"RIFF", b"RF64", b"BW64")
PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)  # written by streaming writers: "to the end of the file"
EXTENSIBLE = 0xFFFE
# The 14 bytes after the format code in a WAVE_FORMAT_EXTENSIBLE sub-format GUID.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

# Format codes sent as WAV: the data is one sample after another, so length = bytes / frame size.
SENT: dict[int, str] = {0x0001: "PCM", 0x0003: "IEEE float", 0x0006: "A-law", 0x0007: "µ-law"}

# Compressed or foreign codecs met in WAV files, named in the refusal.
REFUSED: dict[int, str] = {
    0x0002: "Microsoft ADPCM",
    0x0010: "OKI ADPCM",
    0x0011: "IMA ADPCM",
    0x0014: "G.723 ADPCM",
    0x0017: "Dialogic OKI ADPCM",
    0x0020: "Yamaha ADPCM",
    0x0022: "DSP Group TrueSpeech",
    0x0031: "GSM 6.10",
    0x0038: "NMS VBXADPCM",
    0x0040: "G.721 ADPCM",
    0x0042: "G.723.1",
    0x0045: "G.726 ADPCM",
    0x0050: "MPEG layer I/II",
    0x0055: "MP3",
    0x0064: "G.726 ADPCM",
    0x0065: "G.722 ADPCM",
    0x00FF: "AAC",
    0x0160: "WMA",
    0x0161: "WMA",
    0x0162: "WMA Pro",
    0x0163: "WMA Lossless",
    0x1610: "AAC",
    0x2000: "AC-3",
    0x2001: "DTS",
    0xF1AC: "FLAC",
}

_ONLY = "(only PCM, float, A-law or µ-law WAV)"
_MAX_CHUNKS = 4096  # a walk that long is not a WAV header: stop rather than crawl the file


@dataclasses.dataclass(frozen=True)
class Chunk:
    id: bytes
    start: int  # offset of the payload
    size: int  # as declared


@dataclasses.dataclass(frozen=True)
class Format:
    code: int  # the sub-format's code for WAVE_FORMAT_EXTENSIBLE
    channels: int
    rate: int
    bits: int
    block_align: int


def measure(reader: Reader, start: int) -> AudioInfo:
    """The codec and the length of the WAV whose header is at `start` (after any ID3v2 tag),
    or PermanentError saying why it is not sent."""
    head = reader.read(start, 12)
    if len(head) < 12 or head[:4] not in FORMS or head[8:12] != b"WAVE":
        raise PermanentError("corrupt WAV: no RIFF/WAVE header")
    fmt_chunk, data = _find_chunks(reader, start + 12)
    fmt = _parse_fmt(reader.read(fmt_chunk.start, min(fmt_chunk.size, 64)))
    name = _sent_codec(fmt)
    size, length_from = _data_size(reader, data, _ds64_data_size(reader, start + 12, head[:4]))
    frame_bytes = fmt.channels * ((fmt.bits + 7) // 8) or fmt.block_align
    frames = size // frame_bytes
    if frames == 0:
        raise PermanentError("corrupt WAV: no audio data")
    codec = f"{name} {fmt.bits}-bit" if name in ("PCM", "IEEE float") else name
    return AudioInfo("wav", frames / fmt.rate, codec, length_from)


def _find_chunks(reader: Reader, offset: int) -> tuple[Chunk, Chunk]:
    """`fmt ` and `data`. A chunk after `data` is reached only if the data size is real."""
    found: dict[bytes, Chunk] = {}
    for _ in range(_MAX_CHUNKS):
        chunk = _chunk_at(reader, offset)
        if chunk is None:
            break
        if chunk.id in (b"fmt ", b"data"):
            found.setdefault(chunk.id, chunk)
        if len(found) == 2:
            return found[b"fmt "], found[b"data"]
        if chunk.id == b"data" and _open_ended(reader, chunk):
            break
        offset = _next_offset(chunk)
    if b"fmt " not in found:
        raise PermanentError("corrupt WAV: no fmt chunk before the audio data")
    raise PermanentError("corrupt WAV: no data chunk")


def _open_ended(reader: Reader, data: Chunk) -> bool:
    """Whether the data runs to the end of the file, leaving no room for chunks after it."""
    return data.size in PLACEHOLDER_SIZES or data.start + data.size >= reader.size


def _chunk_at(reader: Reader, offset: int) -> Chunk | None:
    head = reader.read(offset, 8)
    if len(head) < 8 or not _is_chunk_id(head[:4]):
        return None
    return Chunk(head[:4], offset + 8, int.from_bytes(head[4:], "little"))


def _next_offset(chunk: Chunk) -> int:
    # Odd sizes are padded to even. Files whose writer forgot the pad byte are refused, as
    # ffmpeg and libsndfile refuse them: they find no data chunk either.
    return chunk.start + chunk.size + chunk.size % 2


def _is_chunk_id(cid: bytes) -> bool:
    return len(cid) == 4 and all(0x20 <= byte <= 0x7E for byte in cid)


def _parse_fmt(payload: bytes) -> Format:
    if len(payload) < 16:
        raise PermanentError("corrupt WAV: fmt chunk too short")
    code, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", payload)
    if code == EXTENSIBLE:
        code = _sub_format(payload)
    if channels == 0 or rate == 0 or (bits == 0 and block_align == 0):
        raise PermanentError("corrupt WAV: fmt chunk says 0 channels, rate or sample size")
    return Format(code, channels, rate, bits, block_align)


def _sub_format(payload: bytes) -> int:
    guid = payload[24:40]
    if len(guid) < 16 or guid[2:] != _GUID_TAIL:
        raise OtherFormat(
            f"WAV holding audio of an unknown extensible sub-format is not accepted {_ONLY}",
            kind="WAV holding an unknown extensible sub-format",
        )
    return int.from_bytes(guid[:2], "little")


def _sent_codec(fmt: Format) -> str:
    if fmt.code in SENT:
        return SENT[fmt.code]
    name = REFUSED.get(fmt.code, f"format 0x{fmt.code:04X}")
    raise OtherFormat(
        f"WAV holding {name} audio is not accepted {_ONLY}", kind=f"WAV holding {name}"
    )


def _ds64_data_size(reader: Reader, offset: int, form: bytes) -> int | None:
    """The 64-bit data size of RF64/BW64 (its `ds64` chunk comes first, at `offset`), or None."""
    if form == b"RIFF":
        return None
    chunk = _chunk_at(reader, offset)
    if chunk is None or chunk.id != b"ds64" or chunk.size < 16:
        raise PermanentError(f"corrupt WAV: {form.decode()} without a ds64 chunk")
    return int.from_bytes(reader.read(chunk.start + 8, 8), "little")


def _data_size(reader: Reader, data: Chunk, ds64_size: int | None) -> tuple[int, LengthFrom]:
    """The bytes of audio really present, and whether the header's size could be believed."""
    declared = data.size
    if ds64_size is not None and declared == 0xFFFFFFFF:
        if ds64_size == 0:
            # Unlike a RIFF placeholder, ffmpeg and libsndfile both play this as empty.
            raise PermanentError("corrupt WAV: RF64 with a data size of 0 in ds64 (plays as empty)")
        declared = ds64_size
    present = max(0, reader.size - data.start)
    if declared in PLACEHOLDER_SIZES or declared > present:
        return present, LengthFrom.COUNT
    return declared, LengthFrom.HEADER
