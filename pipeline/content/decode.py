"""Decode any audio file FFmpeg reads into a PCM WAV: exactly, streaming, the same bytes each time.

The service takes WAV and MP3 only; everything else a catalogue holds (FLAC, AIFF, ALAC and AAC
in MP4, Ogg Vorbis, Opus, WMA, WavPack, APE, TTA, WAV holding ADPCM/GSM/G.72x/MP3, RIFX) is
decoded here and sent as a WAV. The decoder is FFmpeg, through PyAV (`av`, an optional extra:
`pip install 'ingest[decode]'`); `available()` says whether it is installed. RIFX needs no
decoder (see `wavfile`).

What comes out (`decode_to_wav`):
- at the source's own rate, channels and depth: 16-bit stays 16-bit, 24-bit stays 24-bit (FFmpeg
  hands 24-bit samples over in 32-bit words; the depth is read from the codec's header, and the
  low byte must be zero), 8-bit stays 8-bit; float sources and lossy codecs (their decoders'
  output is float) are written as IEEE float (32-bit; 64-bit for a 64-bit float source):
  nothing is rounded, clipped or dithered;
- streamed packet by packet into the destination: memory stays flat whatever the length;
- the header written by hand (`wavfile.wav_header`), so the same source bytes give the same
  WAV bytes on every run;
- its sha256 taken as it is written when the length is known before decoding (FLAC states its
  sample count), else read back once the header is written last.

What is refused, with one line saying why (`DecodeError`):
- whatever FFmpeg cannot read, or reads with an error: decoding is strict (CRC checks, errors
  abort rather than conceal);
- audio that decodes short or damaged: every frame's checksum is checked (FLAC's CRC-16,
  WavPack's CRC, ...), FLAC's sample count (in its header) must be met, other lossless codecs
  must give the length their container states, lossy ones nearly so. A file with a bad frame in
  the middle is refused, never sent cut short. FLAC's MD5 of the whole audio is not checked:
  with every frame's CRC checked it would add a check of the decoder itself (and of encoders
  that wrote a wrong MD5), at a fifth of a decode's cost;
- DRM-protected files, DSD (it decodes to 352.8 kHz float, eight times CD's size), audio above
  192 kHz, a stream whose format changes mid-way, and audio that decodes to nothing;
- audio longer than `max_seconds`: the decode stops there rather than write what is refused.

A time bound (`timeout`: `DecodeTimeout`) and a stop (`stopping`: `Stopped`) are checked
between packets; FFmpeg's own reads
are cut after 10 s of silence from the file. A codec call that never returns cannot be
interrupted from Python (only a process could be killed); none is known.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.content.wavfile import FLOAT, PCM, WavFormat, is_rifx, rifx_to_wav, wav_header
from pipeline.core.errors import EntryError, PermanentError, Stopped

if TYPE_CHECKING:
    import av.audio.frame
    import av.audio.stream
    import av.container

INSTALL = "pip install 'ingest[decode]'"
MAX_RATE = 192_000
READ_TIMEOUT = 10.0  # seconds FFmpeg waits on one read of the file before giving up
# Abort on any error the decoder can detect, instead of concealing it (FFmpeg's default).
STRICT = {"err_detect": "crccheck+bitstream+buffer+explode"}
LOSSLESS = frozenset(
    {"flac", "alac", "wavpack", "tta", "ape", "mlp", "truehd", "wmalossless", "shorten", "tak"}
)
DRM_TAGS = frozenset({"drms", "enca", "aavd", "drmi"})
# WAVE_FORMAT_EXTENSIBLE speaker bits, in the order of FFmpeg's channel names.
_SPEAKER_ORDER = "FL FR FC LFE BL BR FLC FRC BC SL SR TC TFL TFC TFR TBL TBC TBR"
_SPEAKERS = {name: 1 << i for i, name in enumerate(_SPEAKER_ORDER.split(" "))}
_CHUNK = 1 << 20
Stopping = Callable[[], bool]


class DecodeError(PermanentError):
    """The file cannot be decoded whole; the reason is one line, in the decoder's words."""


class DecoderMissing(EntryError):
    """The file needs decoding and the decoder is not installed: left for a run that has it."""


class DecodeTimeout(EntryError):
    """The decode ran out of time: nothing sent, left for the next run."""


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """A WAV written by `decode_to_wav`."""

    format: WavFormat
    frames: int
    converted_from: str  # flac, alac, aac, vorbis, aiff, rifx, wav/adpcm_ima_wav, ...
    size: int  # bytes of the WAV
    sha256: str  # of the WAV

    @property
    def seconds(self) -> float:
        return self.frames / self.format.rate


@functools.cache
def available() -> bool:
    """Whether the decoder (PyAV, with numpy) is installed: imported on the first call (about
    a third of a second), so a run that meets only WAV and MP3 never loads it."""
    try:
        _av()
        import numpy  # noqa: F401
    except (DecoderMissing, ImportError):
        return False
    return True


def decode_to_wav(
    src: Path,
    dst: Path,
    *,
    timeout: float,
    max_seconds: float | None = None,
    stopping: Stopping = lambda: False,
) -> Decoded:
    """Decode `src` into a new WAV at `dst` (the caller removes it on failure). Blocking and
    CPU-bound: run it in a worker thread (FFmpeg lets go of the GIL while it decodes)."""
    check = _checker(timeout, stopping)
    with src.open("rb") as handle:
        head = handle.read(12)
    if not head:
        raise DecodeError("empty file (0 bytes)")
    with dst.open("w+b") as out:
        digest = None
        if is_rifx(head):
            fmt, size = rifx_to_wav(src, out, check)
            source = "rifx"
        else:
            fmt, size, source, digest = _decode(src, out, check, max_seconds)
        if digest is None:
            digest = _sha256(out)
        total = out.seek(0, 2)
    return Decoded(fmt, size // fmt.block, source, total, digest)


def describe(path: Path) -> str | None:
    """What codec `path` holds, as FFmpeg names it ("alac", "vorbis"); None without the
    decoder, or when it cannot tell."""
    if not available():
        return None
    try:
        with _open(path) as container:
            return _source(path, container).codec
    except (PermanentError, OSError):
        return None
    except Exception:  # noqa: BLE001 (any decoder error: we only wanted a name)
        return None


def _checker(timeout: float, stopping: Stopping) -> Callable[[], None]:
    deadline = time.monotonic() + timeout

    def check() -> None:
        if stopping():
            raise Stopped()
        if time.monotonic() > deadline:
            raise DecodeTimeout(f"decoding took longer than {timeout:g} s")

    return check


def _sha256(out: BinaryIO) -> str:
    """The sha256 of what was written, read back."""
    out.seek(0)
    digest = hashlib.sha256()
    while chunk := out.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


# --- FFmpeg -------------------------------------------------------------------------------------


def _av() -> Any:
    """PyAV, imported on first use with FFmpeg's messages kept for the errors it raises."""
    try:
        import av
        import av.logging
    except ImportError as exc:
        raise DecoderMissing(f"the decoder is not installed: {INSTALL}") from exc
    # At ERROR, PyAV attaches FFmpeg's last message to the exception it raises (`log`); the
    # messages themselves go nowhere else.
    av.logging.set_level(av.logging.ERROR)
    libav = logging.getLogger("libav")
    if not libav.handlers:
        libav.addHandler(logging.NullHandler())
    libav.propagate = False
    return av


def _open(path: Path) -> av.container.InputContainer:
    lib = _av()
    try:
        container: av.container.InputContainer = lib.open(
            str(path), metadata_errors="ignore", timeout=READ_TIMEOUT
        )
    except lib.error.FFmpegError as exc:
        raise DecodeError(_reason(exc)) from exc
    return container


@dataclasses.dataclass(frozen=True, slots=True)
class _Source:
    """What the container and the codec's header say of the audio, before decoding."""

    container: str
    codec: str
    bits: int | None  # the depth in the codec's header, where it has one
    seconds: float | None  # the length the container states
    frames: int | None  # the sample count the codec's header states exactly (FLAC's)

    @property
    def lossless(self) -> bool:
        return self.codec in LOSSLESS or self.codec.startswith("pcm_")

    @property
    def converted_from(self) -> str:
        if self.container == "wav":
            return f"wav/{self.codec}"
        if self.codec.startswith("pcm_"):
            return self.container.split(",")[0]  # aiff, caf, au, w64: PCM in another box
        return self.codec


def _source(path: Path, container: av.container.InputContainer) -> _Source:
    if not container.streams.audio:
        raise DecodeError(f"no audio in this {container.format.name} file")
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name
    tag = (ctx.codec_tag or "").strip("\x00")
    if tag in DRM_TAGS or "encryption" in {k.lower() for k in (stream.metadata or {})}:
        raise DecodeError(f"DRM-protected {codec} ({tag or 'encrypted'}): cannot be decoded")
    if codec.startswith("dsd_"):
        raise DecodeError(
            f"DSD audio ({codec}) is not converted: it decodes to {ctx.sample_rate} Hz float, "
            "far above what the service plays; convert it to PCM first"
        )
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    extradata = ctx.extradata or b""
    frames = _flac_total(extradata) if codec == "flac" else None
    bits = _header_bits(path, container.format.name, codec, extradata)
    return _Source(container.format.name, codec, bits, seconds, frames)


def _header_bits(path: Path, container: str, codec: str, extradata: bytes) -> int | None:
    """The source's depth from its codec's header (PyAV does not expose it for audio)."""
    if codec == "flac" and len(extradata) >= 34:
        return (((extradata[12] & 0x01) << 4) | (extradata[13] >> 4)) + 1
    if codec == "alac" and len(extradata) >= 36 and extradata[4:8] == b"alac":
        return extradata[17]
    if codec.startswith("pcm_"):
        digits = "".join(ch for ch in codec.split("_")[1] if ch.isdigit())
        return int(digits) if digits else None
    if codec == "wavpack" and container == "wv":
        with path.open("rb") as handle:
            block = handle.read(32)
        if block[:4] == b"wvpk" and len(block) == 32:
            flags = struct.unpack_from("<I", block, 24)[0]
            return 32 if flags & 0x80 else ((flags & 3) + 1) * 8 - ((flags >> 13) & 0x1F)
    return None


def _flac_total(extradata: bytes) -> int | None:
    """The total samples FLAC's STREAMINFO states; None when it has none or states 0 (unknown:
    a stream written without seeking back)."""
    if len(extradata) < 34:
        return None
    total = ((extradata[13] & 0x0F) << 32) | struct.unpack_from(">I", extradata, 14)[0]
    return total or None


def _decode(
    src: Path, out: BinaryIO, check: Callable[[], None], max_seconds: float | None
) -> tuple[WavFormat, int, str, str | None]:
    """(format, data bytes, what it was converted from, the WAV's sha256 when taken while
    writing)."""
    lib = _av()
    try:
        with _open(src) as container:
            source = _source(src, container)
            stream = container.streams.audio[0]
            stream.codec_context.options = dict(STRICT)
            stream.codec_context.thread_count = 1  # files are decoded side by side instead
            sink = _Sink(out, source)
            _pump(container, stream, sink, check, max_seconds)
    except lib.error.FFmpegError as exc:
        raise DecodeError(_reason(exc)) from exc
    except MemoryError as exc:
        raise DecodeError("out of memory while decoding") from exc
    fmt = sink.finish()
    return fmt, sink.data_bytes, source.converted_from, sink.digest


def _pump(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    sink: _Sink,
    check: Callable[[], None],
    max_seconds: float | None,
) -> None:
    for packet in container.demux(stream):
        check()
        for frame in packet.decode():
            sink.add(frame)
            if max_seconds is not None and sink.seconds > max_seconds:
                raise DecodeError(_too_long(sink.source.seconds, max_seconds))


def _too_long(stated: float | None, limit: float) -> str:
    if stated is not None and stated > limit:
        return f"too long: {stated:.1f} s (must be at most 10 min)"
    return f"too long: more than {limit:.0f} s once decoded (must be at most 10 min)"


class _Sink:
    """Decoded frames into the WAV's sample bytes, checked as they go; the header last."""

    def __init__(self, out: BinaryIO, source: _Source) -> None:
        self.out = out
        self.source = source
        self.fmt: WavFormat | None = None
        self.layout: tuple[str, int, str] | None = None
        self.frames = 0
        self.low_bits = 0  # OR of the bytes dropped from 24-bit samples: must stay 0
        # The length known ahead: the real header goes first, and the WAV is hashed as written.
        self._sha = hashlib.sha256() if source.frames else None
        self._pending = bytearray()  # written (and hashed) a megabyte at a time, not per frame

    @property
    def seconds(self) -> float:
        return self.frames / self.fmt.rate if self.fmt else 0.0

    @property
    def data_bytes(self) -> int:
        return self.frames * self.fmt.block if self.fmt else 0

    def add(self, frame: av.audio.frame.AudioFrame) -> None:
        layout = (frame.format.name, frame.sample_rate, frame.layout.name)
        if self.fmt is None:
            self.fmt, self.layout = self._start(frame), layout
        elif layout != self.layout:
            raise DecodeError(f"the audio's format changes mid-file ({self.layout} -> {layout})")
        self._pending += self._bytes(frame, self.fmt.bits)
        if len(self._pending) >= _CHUNK:
            self._flush()
        self.frames += frame.samples

    @property
    def digest(self) -> str | None:
        """The WAV's sha256, when it was taken as written (after `finish`)."""
        return self._sha.hexdigest() if self._sha is not None else None

    def _write(self, data: bytes | bytearray) -> None:
        if self._sha is not None:
            self._sha.update(data)
        self.out.write(data)

    def _flush(self) -> None:
        self._write(self._pending)
        self._pending.clear()

    def _start(self, frame: av.audio.frame.AudioFrame) -> WavFormat:
        if frame.sample_rate > MAX_RATE:
            raise DecodeError(
                f"{self.source.codec} at {frame.sample_rate} Hz is not converted "
                f"(at most {MAX_RATE} Hz)"
            )
        code, bits = _depth(frame.format.name, self.source.bits)
        channels = len(frame.layout.channels)
        fmt = WavFormat(code, channels, frame.sample_rate, bits, _mask(frame))
        # The real header when the length is known (`finish` refuses any other length), else
        # a placeholder of the same length.
        self._write(wav_header(fmt, (self.source.frames or 0) * fmt.block))
        return fmt

    def _bytes(self, frame: av.audio.frame.AudioFrame, bits: int) -> bytes | memoryview:
        if not frame.format.is_planar and bits == frame.format.bytes * 8:
            # Already interleaved, at the width written: the decoder's own buffer, no copy
            # (a buffer may be longer than its samples: it is padded for alignment).
            used = frame.samples * len(frame.layout.channels) * frame.format.bytes
            return memoryview(frame.planes[0])[:used]
        import numpy as np

        samples: Any = frame.to_ndarray()
        if frame.format.is_planar:
            samples = samples.T  # one row per channel -> interleaved
        samples = np.ascontiguousarray(samples).reshape(-1)
        if bits == 24:
            self.low_bits |= int(np.bitwise_or.reduce(samples & 0xFF)) if samples.size else 0
            return bytes(samples.view(np.uint8).reshape(-1, 4)[:, 1:].tobytes())
        return bytes(samples.tobytes())

    def finish(self) -> WavFormat:
        """Check that the whole of the audio was decoded, then write the real header."""
        self._flush()
        fmt, source = self.fmt, self.source
        if fmt is None or self.frames == 0:
            raise DecodeError(f"{source.codec} in {source.container} decodes to 0 samples")
        if self.low_bits:
            raise DecodeError(f"{source.codec}: samples wider than the 24 bits its header says")
        self._check_length(fmt.rate)
        if self.data_bytes & 1:
            self._write(b"\0")
        if self._sha is None:
            self.out.seek(0)
            self.out.write(wav_header(fmt, self.data_bytes))
        return fmt

    def _check_length(self, rate: int) -> None:
        source, frames = self.source, self.frames
        if source.frames:
            if frames != source.frames:
                raise DecodeError(f"FLAC: decoded {frames} of {source.frames} samples (corrupt)")
            return
        if not source.seconds:
            return
        stated = round(source.seconds * rate)
        if source.lossless and abs(frames - stated) > max(1, rate // 1000):
            raise DecodeError(f"{source.codec}: decoded {frames} of {stated} samples (corrupt)")
        slack = 0.05 if source.container == "ogg" else 0.5  # Ogg states it exactly
        if frames < (source.seconds - slack) * rate:
            raise DecodeError(
                f"{source.codec}: decoded {frames / rate:.2f} s of {source.seconds:.2f} s "
                "(truncated or corrupt)"
            )


def _depth(sample_format: str, header_bits: int | None) -> tuple[int, int]:
    """(WAV format code, bits per sample) for FFmpeg's sample format."""
    base = sample_format.rstrip("p")
    if base == "u8":
        return PCM, 8
    if base == "s16":
        return PCM, 16
    if base == "s32":
        return PCM, 24 if header_bits is not None and header_bits <= 24 else 32
    if base == "flt":
        return FLOAT, 32  # every lossy decoder's output, and 32-bit float sources
    if base == "dbl":
        return FLOAT, 64  # 64-bit float sources (AIFF-C fl64, ...): kept whole
    raise DecodeError(f"samples in {sample_format} are not converted")


def _mask(frame: av.audio.frame.AudioFrame) -> int:
    """The WAVE_FORMAT_EXTENSIBLE speaker mask; 0 (unset) when a channel has no bit, or the
    order is not WAV's."""
    mask = 0
    for channel in frame.layout.channels:
        bit = _SPEAKERS.get(channel.name)
        if bit is None or bit <= mask:
            return 0
        mask |= bit
    return mask


def _reason(exc: Exception) -> str:
    """One line: FFmpeg's error, and its last logged message (which names the codec's
    complaint: "flac: decode_frame() failed", "wavpack: CRC error")."""
    text = str(getattr(exc, "strerror", None) or exc)
    log = getattr(exc, "log", None)
    if log and isinstance(log, tuple) and len(log) == 3:
        text += f" ({log[1]}: {str(log[2]).strip()})"
    return f"decoder: {text}".splitlines()[0]
