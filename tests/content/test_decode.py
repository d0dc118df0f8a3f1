"""The decoder against files made by real encoders (flac, ffmpeg, sox, wavpack), with the
ffmpeg command line (and sox where ffmpeg is wrong) as the reference decode."""

from __future__ import annotations

import hashlib
import random
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile

from pipeline.content import decode
from pipeline.content.decode import DecodeError, DecodeTimeout, decode_to_wav
from pipeline.content.probe import measure
from pipeline.core.errors import Stopped
from tests.encoders import Encoded, need, wav_chunks, write_dsf

pytestmark = pytest.mark.skipif(not decode.available(), reason="the decoder (av) is not installed")


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Encoded]:
    yield Encoded(tmp_path_factory.mktemp("encoded"))


def decoded(src: Path, tmp_path: Path, **kwargs: float) -> tuple[decode.Decoded, Path]:
    out = tmp_path / f"{src.stem}.out.wav"
    return decode_to_wav(src, out, timeout=kwargs.pop("timeout", 60), **kwargs), out


def reference(src: Path, raw: str) -> bytes:
    """The samples `ffmpeg -i SRC -f RAW -` decodes."""
    argv = ["ffmpeg", "-v", "error", "-i", str(src), "-f", raw, "-"]
    return subprocess.run(argv, check=True, capture_output=True).stdout


def sox_s16(src: Path) -> bytes:
    argv = ["sox", str(src), "-t", "raw", "-e", "signed", "-b", "16", "-L", "-"]
    return subprocess.run(argv, check=True, capture_output=True).stdout


LOSSLESS = [  # file, bits kept, the reference's raw format
    ("flac16.flac", 16, "s16le"),
    ("flac24.flac", 24, "s24le"),
    ("flac16_mono.flac", 16, "s16le"),
    ("flac24_6ch.flac", 24, "s24le"),
    ("flac24_96k.flac", 24, "s24le"),
    ("alac16.m4a", 16, "s16le"),
    ("alac24.m4a", 24, "s24le"),
    ("aiff16.aiff", 16, "s16le"),
    ("aiff24.aiff", 24, "s24le"),
    ("aifc16.aifc", 16, "s16le"),
    ("aifc_sowt.aifc", 16, "s16le"),
    ("aifc_f32.aifc", 32, "f32le"),
    ("aifc_f64.aifc", 64, "f64le"),
    ("wv16.wv", 16, "s16le"),
    ("wv24.wv", 24, "s24le"),
    ("wvf32.wv", 32, "f32le"),
    ("tta16.tta", 16, "s16le"),
    ("wav_msadpcm.wav", 16, "s16le"),
    ("wav_gsm.wav", 16, "s16le"),
    ("wav_g726.wav", 16, "s16le"),
]


@pytest.mark.parametrize(("name", "bits", "raw"), LOSSLESS)
def test_lossless_sources_decode_bit_exact_to_what_ffmpeg_decodes(
    made: Encoded, tmp_path: Path, name: str, bits: int, raw: str
) -> None:
    need("ffmpeg")
    src = made(name)
    result, out = decoded(src, tmp_path)
    (code, channels, _, wav_bits), data = wav_chunks(out)
    assert (wav_bits, result.format.bits) == (bits, bits)
    assert code == (3 if raw.startswith("f") else 1)
    assert data == reference(src, raw)
    assert result.frames * channels * bits // 8 == len(data)
    assert result.size == out.stat().st_size
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "original"),
    [
        ("flac16.flac", "src16.wav"),
        ("flac24.flac", "src24.wav"),
        ("alac24.m4a", "src24.wav"),
        ("wv24.wv", "src24.wav"),
        ("aiff24.aiff", "src24.wav"),
        ("rifx16.wav", "src16.wav"),
        ("rifx24.wav", "src24.wav"),
        ("riff_be16.wav", "src16.wav"),
        ("riff_be24.wav", "src24.wav"),
    ],
)
def test_lossless_sources_give_back_the_original_samples(
    made: Encoded, tmp_path: Path, name: str, original: str
) -> None:
    _, out = decoded(made(name), tmp_path)
    assert wav_chunks(out)[1] == wav_chunks(made(original))[1]


def test_rifx_is_converted_by_us_because_ffmpeg_reads_it_as_little_endian(
    made: Encoded, tmp_path: Path
) -> None:
    need("sox", "ffmpeg")
    src = made("rifx16.wav")
    result, out = decoded(src, tmp_path)
    assert wav_chunks(out)[1] == sox_s16(src)
    assert reference(src, "s16le") != sox_s16(src)  # the bug this works around
    assert result.converted_from == "rifx"


def test_ima_adpcm_matches_sox_and_libsndfile(made: Encoded, tmp_path: Path) -> None:
    """Debian's ffmpeg 5.1 decodes IMA ADPCM differently from FFmpeg 8 (which PyAV bundles);
    sox and libsndfile agree with FFmpeg 8, so they are the reference here."""
    src = made("wav_ima.wav")
    _, out = decoded(src, tmp_path)
    data = wav_chunks(out)[1]
    assert data == sox_s16(src)
    samples, _ = soundfile.read(src, dtype="int16")
    assert data == samples.tobytes()


@pytest.mark.parametrize(
    "name",
    ["flac16.flac", "flac24_6ch.flac", "alac24.m4a", "aac.m4a", "vorbis.ogg", "opus.opus"]
    + ["wma.wma", "rifx24.wav"],
)
def test_the_same_source_always_gives_the_same_bytes(
    made: Encoded, tmp_path: Path, name: str
) -> None:
    first = decode_to_wav(made(name), tmp_path / "a.wav", timeout=60)
    second = decode_to_wav(made(name), tmp_path / "b.wav", timeout=60)
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert b"LIST" not in (tmp_path / "a.wav").read_bytes()[:200]


def test_a_flac_of_unstated_length_gives_the_same_wav_as_one_that_states_it(
    made: Encoded, tmp_path: Path
) -> None:
    src = made("flac16.flac")
    raw = bytearray(src.read_bytes())
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0  # STREAMINFO first, at byte 8
    raw[8 + 13] &= 0xF0  # total samples 0, as an encoder writes it that cannot seek back
    raw[8 + 14 : 8 + 18] = bytes(4)
    unstated = tmp_path / "unstated.flac"
    unstated.write_bytes(bytes(raw))
    stated, stated_out = decoded(src, tmp_path)  # hashed as written, header first
    other, other_out = decoded(unstated, tmp_path)  # header last, hashed when read back
    assert other_out.read_bytes() == stated_out.read_bytes()
    assert other.sha256 == stated.sha256 == hashlib.sha256(stated_out.read_bytes()).hexdigest()
    assert (other.size, other.frames) == (stated.size, stated.frames)


def test_16_bit_stereo_has_the_canonical_44_byte_header(made: Encoded, tmp_path: Path) -> None:
    _, out = decoded(made("flac16.flac"), tmp_path)
    raw = out.read_bytes()[:44]
    assert raw[12:16] == b"fmt " and raw[36:40] == b"data"
    with wave.open(str(out)) as w:  # the standard library's reader knows format 1 only
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 44100)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("flac24.flac", "pcm_s24le"),
        ("flac24_6ch.flac", "pcm_s24le"),
        ("aac.m4a", "pcm_f32le"),
        ("flac24_96k.flac", "pcm_s24le"),
    ],
)
def test_24_bit_float_and_multichannel_wavs_are_read_by_other_readers_and_our_probe(
    made: Encoded, tmp_path: Path, name: str, codec: str
) -> None:
    need("ffprobe")
    result, out = decoded(made(name), tmp_path)
    info = soundfile.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (
        result.format.rate,
        result.format.channels,
        result.frames,
    )
    argv = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"]
    shown = subprocess.run([*argv, str(out)], check=True, capture_output=True, text=True)
    assert shown.stdout.strip() == codec
    assert abs(measure(out).duration - result.seconds) < 1e-6  # the probe reads it too


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("aac.m4a", 3), ("adts.aac", 3), ("vorbis.ogg", 3), ("opus.opus", 3), ("wma.wma", 3)]
    + [("wav_mp3.wav", 3)],
)
def test_lossy_sources_are_decoded_once_to_32_bit_float(
    made: Encoded, tmp_path: Path, name: str, seconds: float
) -> None:
    result, out = decoded(made(name), tmp_path)
    assert (result.format.code, result.format.bits) == (3, 32)
    assert abs(result.seconds - seconds) < 0.1
    assert wav_chunks(out)[0][0] == 3


@pytest.mark.parametrize(
    ("name", "converted_from"),
    [
        ("flac16.flac", "flac"),
        ("alac16.m4a", "alac"),
        ("aiff16.aiff", "aiff"),
        ("aac.m4a", "aac"),
        ("vorbis.ogg", "vorbis"),
        ("wv16.wv", "wavpack"),
        ("wav_ima.wav", "wav/adpcm_ima_wav"),
    ],
)
def test_what_a_file_was_converted_from_is_named(
    made: Encoded, tmp_path: Path, name: str, converted_from: str
) -> None:
    assert decoded(made(name), tmp_path)[0].converted_from == converted_from
    assert decode.describe(made(name)) == converted_from.split("/")[-1].replace("aiff", "pcm_s16be")


# --- bad input ----------------------------------------------------------------------------------


def damaged(made: Encoded, tmp_path: Path, name: str) -> Path:
    """`name` spoilt in one of the ways files are spoilt: `<how>.<source>`."""
    how, source = name.split(".", 1)
    raw = bytearray(made(source).read_bytes())
    if how == "middle":  # 64 bytes of garbage half way
        raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes((i * 37 + 11) & 0xFF for i in range(64))
    elif how == "flip":  # bits flipped half way
        for k in range(len(raw) // 2, len(raw) // 2 + 16):
            raw[k] ^= 0x10
    elif how == "half":
        del raw[len(raw) // 2 :]
    elif how == "head":
        del raw[20000:]
    elif how == "drm":  # the sample entry marked FairPlay, the audio scrambled
        at = raw.index(b"mp4a", raw.index(b"stsd"))
        raw[at : at + 4] = b"drms"
        start = raw.index(b"mdat") + 20
        for k in range(start, start + 4000):
            raw[k] ^= 0x5A
    out = tmp_path / f"{how}-{source}"
    out.write_bytes(bytes(raw))
    return out


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("middle.flac16.flac", "FLAC: decoded"),
        ("flip.flac16.flac", "FLAC"),
        ("flip.wv16.wv", "wavpack"),
        ("half.flac16.flac", "flac"),
        ("head.aac.m4a", "moov atom not found"),
        ("drm.aac.m4a", "DRM-protected aac (drms)"),
    ],
)
def test_a_damaged_file_is_refused_with_one_line_not_sent_cut_short(
    made: Encoded, tmp_path: Path, name: str, needle: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decoded(damaged(made, tmp_path, name), tmp_path)
    assert needle in caught.value.reason
    assert "\n" not in caught.value.reason


def test_flipped_bits_ffmpeg_would_conceal_are_refused_by_the_frames_checks(
    made: Encoded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flipped = damaged(made, tmp_path, "flip.flac16.flac")
    with pytest.raises(DecodeError, match="FLAC: decoded"):
        decoded(flipped, tmp_path)
    monkeypatch.setattr(decode, "STRICT", {})  # FFmpeg's default: errors concealed
    decoded(flipped, tmp_path)  # what the checks alone stand between: sent damaged


def test_flac_cut_at_a_frame_boundary_is_refused_by_its_sample_count(
    made: Encoded, tmp_path: Path
) -> None:
    raw = made("flac16.flac").read_bytes()
    at = raw.index(b"\xff\xf8", 8400)
    for _ in range(20):
        at = raw.index(b"\xff\xf8", at + 1)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(raw[:at])
    with pytest.raises(DecodeError, match="decoded"):
        decoded(cut, tmp_path)


def test_an_m4a_with_its_index_first_cut_short_is_refused(made: Encoded, tmp_path: Path) -> None:
    need("ffmpeg")
    src = tmp_path / "faststart.m4a"
    argv = ["ffmpeg", "-v", "error", "-i", str(made("src16.wav")), "-c:a", "alac"]
    subprocess.run([*argv, "-movflags", "+faststart", str(src)], check=True)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with pytest.raises(DecodeError):
        decoded(cut, tmp_path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (bytes(random.Random(1).randrange(256) for _ in range(4096)), "decode"),
    ],
)
def test_empty_and_garbage_files_are_refused(tmp_path: Path, content: bytes, needle: str) -> None:
    src = tmp_path / "x.flac"
    src.write_bytes(content)
    with pytest.raises(DecodeError, match=needle):
        decoded(src, tmp_path)


def test_a_file_of_no_samples_is_refused(tmp_path: Path) -> None:
    need("ffmpeg")
    src = tmp_path / "empty.flac"
    argv = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo"]
    subprocess.run([*argv, "-t", "0", "-c:a", "flac", str(src)], check=True)
    with pytest.raises(DecodeError, match="0 samples"):
        decoded(src, tmp_path)


def test_dsd_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.dsf"
    write_dsf(src)
    with pytest.raises(DecodeError, match="DSD"):
        decoded(src, tmp_path)


def test_audio_above_192_khz_is_refused(made: Encoded, tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="384000 Hz"):
        decoded(made("flac384k.flac"), tmp_path)


def test_the_time_bound_and_a_stop_end_a_decode(made: Encoded, tmp_path: Path) -> None:
    src = made("flac24_6ch.flac")
    with pytest.raises(DecodeTimeout, match="longer than"):
        decode_to_wav(src, tmp_path / "a.wav", timeout=1e-6)
    with pytest.raises(Stopped):
        decode_to_wav(src, tmp_path / "b.wav", timeout=60, stopping=lambda: True)


def test_a_decode_stops_as_soon_as_it_is_too_long(made: Encoded, tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match=r"too long: 3\.0 s"):
        decoded(made("flac16.flac"), tmp_path, max_seconds=1.0)
    assert (tmp_path / "flac16.out.wav").stat().st_size < 44100 * 4 * 2  # stopped early
