"""MP3 (MPEG-1, 2 and 2.5 Layer III): how many seconds a full decode plays.

1. Skip the ID3v2 tags in front and the tags at the end (`tags`): they are not audio.
2. Find the first frame that starts a run of frames (`mpeg.find_run`): leading zeros, padding
   and junk are passed over, and a lone sync word in them is not taken for audio.
3. If that frame is an Xing/Info or VBRI tag, its frame and byte counts are believed when the
   bytes present agree with them (within two frames); the length is then a header read.
4. Otherwise every frame is counted by walking from header to header (no decoding): this covers
   VBR streams without a tag, files joined with `cat`, and files cut short.

A LAME tag's encoder delay and padding are taken off, as gapless decoders do.
"""

from __future__ import annotations

import dataclasses
import struct

from pipeline.content.audio import tags
from pipeline.content.audio.info import AudioInfo, LengthFrom, OtherFormat
from pipeline.content.audio.mpeg import STREAM_MASK, Header, find_run, header_at, length_table
from pipeline.content.audio.reader import Reader
from pipeline.core.errors import PermanentError

# How far past the leading tags the first frame may start. mpg123 gives up after 64 KiB of
# junk and ffmpeg searches on; a megabyte covers the padding and zeros real writers leave while
# bounding the time spent on files that are not MP3 at all.
SEARCH = 1 << 20
DECODER_DELAY = 529  # samples every Layer III decoder outputs before the first real one
_BLOCK = 1 << 16
_WORD = struct.Struct(">I").unpack_from
_GAPLESS_ENCODERS = (b"LAME", b"Lavf", b"Lavc")


@dataclasses.dataclass(frozen=True)
class VbrTag:
    """The Xing/Info or VBRI tag in the first frame."""

    frames: int  # audio frames after the tag's own frame; 0 if not given
    size: int  # bytes of the stream, the tag's frame included; 0 if not given
    delay: int = 0  # samples the encoder added at the start (LAME tag)
    padding: int = 0  # and at the end
    gapless: bool = False  # a LAME tag gave delay and padding


def measure(reader: Reader, start: int) -> AudioInfo:
    """The length of the MP3 whose ID3v2 tags end at `start`, or PermanentError saying why not."""
    end = tags.audio_end(reader, start)
    offset, first = _first_frame(reader, start, end)
    # Decoders look for the tag only where the audio starts; anywhere else it is played.
    tag = read_vbr_tag(reader, offset, first) if offset == start else None
    if tag is not None and _believable(tag, end - offset):
        played = _played(tag.frames * first.samples, tag, first.samples)
        return AudioInfo("mp3", played / first.rate, first.codec, LengthFrom.HEADER)
    after_tag = offset + first.length if tag is not None else offset
    counted = walk(reader, after_tag, end, first)
    counted[first.rate] = _played(counted.get(first.rate, 0), tag, first.samples)
    seconds = sum(samples / rate for rate, samples in counted.items())
    return AudioInfo("mp3", seconds, first.codec, LengthFrom.COUNT)


def _first_frame(reader: Reader, start: int, end: int) -> tuple[int, Header]:
    found = find_run(reader, start, min(end, start + SEARCH), end)
    if found is None:
        reason = _no_frames(reader, start)
        if reason.startswith("free-format"):
            raise OtherFormat(reason, kind="free-format MP3")
        raise PermanentError(reason)
    if found[1].layer != 3:
        kind = "MPEG audio layer I/II"
        raise OtherFormat(f"{kind} is not accepted (only WAV or MP3)", kind=kind)
    return found


def _no_frames(reader: Reader, start: int) -> str:
    header = header_at(reader, start)
    if header is not None and header.layer == 3 and header.kbps == 0:
        return "free-format MP3 is not accepted (its frames do not state their bitrate)"
    if header is not None:
        return "corrupt MP3: no run of valid MPEG audio frames"
    if start > 0:
        return "corrupt MP3: an ID3 tag but no MPEG audio frames after it"
    return "not audio: the bytes are neither WAV nor MP3"


def read_vbr_tag(reader: Reader, offset: int, header: Header) -> VbrTag | None:
    """The Xing/Info or VBRI tag in the frame at `offset`, if it holds one."""
    body = reader.read(offset, min(header.length, 512))
    xing = 4 + header.side_info
    if body[xing : xing + 4] in (b"Xing", b"Info"):
        return _xing(body, xing + 4)
    if body[36:40] == b"VBRI" and body[40:42] == b"\x00\x01":
        size, frames = struct.unpack_from(">II", body, 46) if len(body) >= 54 else (0, 0)
        return VbrTag(frames, size)
    return None


def _xing(body: bytes, at: int) -> VbrTag:
    flags = _u32(body, at)
    at += 4
    frames, at = (_u32(body, at), at + 4) if flags & 1 else (0, at)
    size, at = (_u32(body, at), at + 4) if flags & 2 else (0, at)
    at += (100 if flags & 4 else 0) + (4 if flags & 8 else 0)  # seek table, quality
    lame = body[at : at + 24]
    if len(lame) < 24 or lame[:4] not in _GAPLESS_ENCODERS:
        return VbrTag(frames, size)
    delay_padding = int.from_bytes(lame[21:24], "big")
    return VbrTag(frames, size, delay_padding >> 12, delay_padding & 0xFFF, gapless=True)


def _u32(body: bytes, at: int) -> int:
    return int(_WORD(body, at)[0]) if at + 4 <= len(body) else 0


def _believable(tag: VbrTag, present: int) -> bool:
    """Whether the tag's counts describe the bytes really there: a file cut short or with more
    audio joined on has a different size than its tag says."""
    if tag.frames <= 0 or tag.size <= 0:
        return False
    return abs(present - tag.size) <= 2 * tag.size // (tag.frames + 1)


def _played(decoded: int, tag: VbrTag | None, frame_samples: int) -> int:
    """Of `decoded` samples, those a gapless decoder plays: it drops the encoder delay and its
    own, and stops where the tag's frame count less the padding ends, if the stream gets there."""
    if tag is None or not tag.gapless:
        return decoded
    cut_start = tag.delay + DECODER_DELAY
    cut_end = 0
    if tag.frames:
        last = tag.frames * frame_samples
        cut_end = max(0, min(decoded, last) - (last - tag.padding + DECODER_DELAY))
    return max(0, decoded - cut_start - cut_end)


def walk(reader: Reader, offset: int, end: int, first: Header) -> dict[int, int]:
    """Samples in the frames from `offset` to `end`, by sample rate. Where the stream breaks
    (joined files, damage), the walk goes on at the next run of frames."""
    counted: dict[int, int] = {}
    header: Header | None = first
    while header is not None:
        offset, frames = _walk_stream(reader, offset, end, header.word & STREAM_MASK)
        counted[header.rate] = counted.get(header.rate, 0) + frames * header.samples
        offset = tags.skip_id3v2(reader, offset)  # the next file's tag, after `cat`
        found = find_run(reader, offset, end, end)
        offset, header = found if found is not None else (end, None)
    return counted


def _walk_stream(reader: Reader, offset: int, end: int, stream: int) -> tuple[int, int]:
    """Frames of one stream from `offset` on: where they stop, and how many there are."""
    # The loop runs once per frame (about 40 a second of audio): names are local, and the
    # bytes come a block at a time, for speed.
    lengths, word_at = length_table(), _WORD
    frames, block, base, last = 0, b"", offset, -1
    while offset + 4 <= end:
        if offset > last:
            block, base = reader.read(offset, _BLOCK), offset
            last = base + len(block) - 4
        word = word_at(block, offset - base)[0]
        length = lengths[(word >> 9) & 0xFFF]
        if word & STREAM_MASK != stream or not length:
            break
        # A last frame cut short still counts: decoders play it, padded with silence.
        frames += 1
        offset += length
    return min(offset, end), frames
