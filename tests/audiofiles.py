"""Audio files made for the probe's tests, its checking script and its benchmark.

WAV files are written chunk by chunk (so sizes, order and padding can be as odd as real writers
make them) or by libsndfile through `soundfile` (every codec it has). MP3 files are written frame
by frame: a Layer III frame with all-zero side information plays as silence in every decoder, so
a stream of such frames at chosen bitrates is a real VBR or CBR stream whose length is known
exactly (frames x samples per frame); Xing/Info/VBRI tags, ID3v2/ID3v1/APE/Lyrics3 tags are
added around them. LAME itself (`lameenc`) writes raw streams with no Xing tag, as it does on
stdout. The expected length of every file comes from how it was made.
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import tempfile

import lameenc
import numpy as np
import soundfile

# ---------------------------------------------------------------- WAV, chunk by chunk

GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def chunk(cid: bytes, payload: bytes, *, size: int | None = None, pad: bool = True) -> bytes:
    """A RIFF chunk; `size` overrides the declared size, `pad=False` omits the pad byte."""
    declared = len(payload) if size is None else size
    odd = pad and len(payload) % 2
    return cid + struct.pack("<I", declared) + payload + (b"\x00" if odd else b"")


def fmt_chunk(
    code: int = 1, *, channels: int = 1, rate: int = 8000, bits: int = 16, extensible: bool = False
) -> bytes:
    block_align = channels * ((bits + 7) // 8)
    tag = 0xFFFE if extensible else code
    payload = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        payload += struct.pack("<HHIH", 22, bits, 0, code) + GUID_TAIL
    return chunk(b"fmt ", payload)


def riff(*chunks: bytes, form: bytes = b"RIFF", size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return form + struct.pack("<I", len(body) if size is None else size) + body


def pcm_data(frames: int, *, channels: int = 1, bits: int = 16, seed: int = 0) -> bytes:
    """Noise, so that no two files share bytes unless asked to."""
    return random.Random(seed).randbytes(frames * channels * ((bits + 7) // 8))


def pcm_wav(
    seconds: float,
    *,
    rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    code: int = 1,
    extensible: bool = False,
    data_size: int | None = None,
    before_data: tuple[bytes, ...] = (),
    after_data: tuple[bytes, ...] = (),
    seed: int = 0,
) -> bytes:
    """A WAV of `round(seconds * rate)` frames; `data_size` overrides the declared data size."""
    data = pcm_data(round(seconds * rate), channels=channels, bits=bits, seed=seed)
    fmt = fmt_chunk(code, channels=channels, rate=rate, bits=bits, extensible=extensible)
    return riff(fmt, *before_data, chunk(b"data", data, size=data_size), *after_data)


def rf64_wav(
    seconds: float,
    *,
    rate: int = 8000,
    form: bytes = b"RF64",
    ds64_data_size: int | None = None,
    data_size: int = 0xFFFFFFFF,
    seed: int = 0,
) -> bytes:
    """RF64/BW64: the sizes are in `ds64` (`ds64_data_size` overrides the data size there)."""
    frames = round(seconds * rate)
    data = pcm_data(frames, seed=seed)
    real = len(data) if ds64_data_size is None else ds64_data_size
    ds64 = chunk(b"ds64", struct.pack("<QQQI", len(data) + 72, real, frames, 0))
    fmt = fmt_chunk(rate=rate)
    return riff(ds64, fmt, chunk(b"data", data, size=data_size), form=form, size=0xFFFFFFFF)


def info_list() -> bytes:
    """A LIST/INFO chunk with an odd-sized string, as ffmpeg and most editors write."""
    software = chunk(b"ISFT", b"Lavf59.27.100\x00")
    title = chunk(b"INAM", b"odd\x00")
    return chunk(b"LIST", b"INFO" + software + title)


# ---------------------------------------------------------------- WAV, by libsndfile


def tone(frames: int, *, channels: int = 1, rate: int = 8000) -> np.ndarray:
    time = np.arange(frames) / rate
    wave = 0.4 * np.sin(2 * np.pi * 440 * time) + 0.05 * np.sin(2 * np.pi * 3001 * time)
    return np.repeat(wave[:, None], channels, axis=1)


def sndfile_bytes(
    seconds: float, subtype: str, *, rate: int = 8000, channels: int = 1, container: str = "WAV"
) -> bytes:
    """A file written by libsndfile: `subtype` is its codec name (PCM_16, ALAW, IMA_ADPCM...)."""
    out = io.BytesIO()
    signal = tone(round(seconds * rate), channels=channels, rate=rate)
    soundfile.write(out, signal, rate, subtype=subtype, format=container)
    return out.getvalue()


def sndfile_frames(data: bytes) -> int:
    """Frames libsndfile decodes from `data` (counted by reading, not from its header)."""
    total = 0
    with tempfile.NamedTemporaryFile(suffix=".wav") as file:
        file.write(data)
        file.flush()
        with soundfile.SoundFile(file.name) as sound:
            # Compressed WAV reads as "not seekable": ask for blocks until one comes back empty.
            while block := len(sound.read(1 << 16, dtype="int16")):
                total += block
    return total


# ---------------------------------------------------------------- MPEG audio, frame by frame

_VERSION_BITS = {"1": 0b11, "2": 0b10, "2.5": 0b00}
_RATES = {"1": (44100, 48000, 32000), "2": (22050, 24000, 16000), "2.5": (11025, 12000, 8000)}
_KBPS = {
    "1": (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "2": (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_KBPS["2.5"] = _KBPS["2"]


@dataclasses.dataclass(frozen=True)
class Mpeg:
    """One Layer III stream's fixed parameters."""

    version: str = "1"  # "1", "2" or "2.5"
    rate: int = 44100
    mono: bool = False

    @property
    def samples(self) -> int:
        return 1152 if self.version == "1" else 576

    @property
    def side_info(self) -> int:
        if self.version == "1":
            return 17 if self.mono else 32
        return 9 if self.mono else 17

    @property
    def bitrates(self) -> tuple[int, ...]:
        return _KBPS[self.version][1:]

    def header(self, kbps: int, *, padding: bool = False) -> bytes:
        """A header; `kbps=0` makes a free-format one."""
        word = 0xFFE00000 | _VERSION_BITS[self.version] << 19 | 0b01 << 17 | 1 << 16
        word |= _KBPS[self.version].index(kbps) << 12 | _RATES[self.version].index(self.rate) << 10
        word |= int(padding) << 9 | (0b11 if self.mono else 0b00) << 6
        return struct.pack(">I", word)

    def length(self, kbps: int, *, padding: bool = False) -> int:
        return self.samples // 8 * kbps * 1000 // self.rate + int(padding)

    def seconds(self, frames: int) -> float:
        return frames * self.samples / self.rate

    def free_format(self, length: int, rng: random.Random) -> bytes:
        """A free-format frame: bitrate index 0, so only the distance to the next header tells
        its length."""
        head = self.header(0) + bytes(self.side_info)
        return head + rng.randbytes(length - len(head))

    def frame(self, kbps: int, rng: random.Random, *, padding: bool = False) -> bytes:
        """A silent frame; its ancillary bytes are random (false sync words included)."""
        head = self.header(kbps, padding=padding) + bytes(self.side_info)
        return head + rng.randbytes(self.length(kbps, padding=padding) - len(head))


MP3 = Mpeg()
MPEG2 = Mpeg("2", 22050)
MPEG25 = Mpeg("2.5", 8000, mono=True)


def cbr(frames: int, *, kbps: int = 128, mpeg: Mpeg = MP3, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    return b"".join(mpeg.frame(kbps, rng) for _ in range(frames))


def vbr(frames: int, *, mpeg: Mpeg = MP3, seed: int = 0, start_kbps: int | None = None) -> bytes:
    """Frames at random bitrates; `start_kbps` fixes the first frame's (what a probe that
    trusts the first frame would extrapolate from)."""
    rng = random.Random(seed)
    rates = [rng.choice(mpeg.bitrates) for _ in range(frames)]
    if start_kbps is not None and rates:
        rates[0] = start_kbps
    return b"".join(mpeg.frame(kbps, rng, padding=rng.random() < 0.5) for kbps in rates)


def xing(
    audio: bytes,
    frames: int,
    *,
    mpeg: Mpeg = MP3,
    tag: bytes = b"Xing",
    lame: tuple[int, int] | None = (576, 1152),
    claim_frames: int | None = None,
    claim_size: int | None = None,
) -> bytes:
    """`audio` (`frames` frames) behind a Xing/Info tag frame, with a LAME tag of (encoder
    delay, padding) unless `lame` is None. `claim_*` make the tag say something else."""
    kbps = next(k for k in mpeg.bitrates if mpeg.length(k) >= 4 + mpeg.side_info + 156)
    length = mpeg.length(kbps)
    size = length + len(audio) if claim_size is None else claim_size
    count = frames if claim_frames is None else claim_frames
    body = tag + struct.pack(">III", 0x0F, count, size) + bytes(range(100)) + struct.pack(">I", 50)
    if lame is not None:
        delay_padding = (lame[0] << 12 | lame[1]).to_bytes(3, "big")
        body += b"LAME3.100" + bytes(12) + delay_padding
    head = mpeg.header(kbps) + bytes(mpeg.side_info) + body
    return head + bytes(length - len(head)) + audio


def vbri(audio: bytes, frames: int, *, mpeg: Mpeg = MP3, claim_size: int | None = None) -> bytes:
    """`audio` behind a Fraunhofer VBRI tag frame (always 32 bytes after the header)."""
    kbps = next(k for k in mpeg.bitrates if mpeg.length(k) >= 36 + 26)
    length = mpeg.length(kbps)
    size = length + len(audio) if claim_size is None else claim_size
    body = b"VBRI" + struct.pack(">HHHII", 1, 0, 75, size, frames) + bytes(8)
    head = mpeg.header(kbps) + bytes(32) + body
    return head + bytes(length - len(head)) + audio


def gapless_seconds(frames: int, mpeg: Mpeg = MP3, lame: tuple[int, int] = (576, 1152)) -> float:
    """What a gapless decoder plays of `frames` frames behind a LAME tag."""
    return (frames * mpeg.samples - lame[0] - lame[1]) / mpeg.rate


# ---------------------------------------------------------------- tags around MP3 audio


def _synchsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def id3v2(*, padding: int = 0, version: int = 3, footer: bool = False) -> bytes:
    """An ID3v2 tag with a title frame and `padding` zero bytes (counted in its size)."""
    text = b"\x00A title"
    frame_size = _synchsafe(len(text)) if version == 4 else struct.pack(">I", len(text))
    body = b"TIT2" + frame_size + b"\x00\x00" + text + bytes(padding)
    flags = 0x10 if footer else 0
    header = b"ID3" + bytes((version, 0, flags)) + _synchsafe(len(body))
    return header + body + (b"3DI" + header[3:] if footer else b"")


def id3v1() -> bytes:
    return b"TAG" + b"A title".ljust(30, b"\x00") + bytes(94) + b"\xff"


def apev2(*, header: bool = True, value: bytes = b"A title") -> bytes:
    """An APEv2 tag with one item; a large `value` stands for embedded cover art."""
    item = struct.pack("<II", len(value), 0) + b"Title\x00" + value
    size = len(item) + 32
    flags = 0xA0000000 if header else 0
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, flags) + bytes(8)
    head = b"APETAGEX" + struct.pack("<IIII", 2000, size, 1, flags | 0x20000000) + bytes(8)
    return (head if header else b"") + item + footer


def lyrics3v2() -> bytes:
    body = b"LYRICSBEGIN" + b"IND00002" + b"10" + b"LYR00011" + b"[00:01]la\r\n"
    return body + b"%06d" % len(body) + b"LYRICS200"


def lyrics3v1() -> bytes:
    return b"LYRICSBEGIN" + b"la la la\r\n" + b"LYRICSEND"


# ---------------------------------------------------------------- MP3 by LAME


def lame_mp3(
    seconds: float,
    *,
    rate: int = 44100,
    channels: int = 2,
    vbr_quality: int | None = 2,
    kbps: int = 128,
    seed: int = 0,
) -> bytes:
    """A raw LAME stream, as `lame - -` writes on stdout: no Xing tag. VBR unless `vbr_quality`
    is None. Music-like input (a tone whose loudness and noise change) so VBR really varies."""
    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(5)
    if vbr_quality is None:
        encoder.set_bit_rate(kbps)
    else:
        encoder.set_vbr(4)  # vbr_mtrh, LAME's default VBR mode
        encoder.set_vbr_quality(vbr_quality)
    pcm = (music(round(seconds * rate), channels, rate, seed) * 32767).astype("<i2")
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


def music(frames: int, channels: int, rate: int, seed: int) -> np.ndarray:
    """A tone with noise whose loudness swells and fades, in -1..1."""
    rng = np.random.default_rng(seed)
    time = np.arange(frames) / rate
    loudness = 0.5 + 0.5 * np.sin(2 * np.pi * time / 7.0)
    wave = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed % 300) * time)
    noise = 0.2 * loudness * rng.standard_normal(frames)
    mono = np.clip(wave + noise, -1, 1)
    return np.repeat(mono[:, None], channels, axis=1)
