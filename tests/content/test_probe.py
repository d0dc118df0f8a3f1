"""The probe against files as real writers make them: every verdict and length is checked
against how the file was made (sample and frame counts) or against libsndfile's own decode, and
every file is probed twice, from disk (`probe`) and from memory (`probe_bytes`), with the same
result required."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

from pipeline.content.probe import (
    AudioInfo,
    LengthFrom,
    OtherFormat,
    measure,
    probe,
    probe_bytes,
    sniff,
)
from pipeline.core.errors import PermanentError
from pipeline.sandbox.samples import mp3_bytes, write_int16_wav, write_mp3, write_wav
from tests import audiofiles as af
from tests.audiofiles import MP3, MPEG2, MPEG25


def judge(data: bytes, tmp_path: Path) -> AudioInfo | str:
    """The verdict on `data`, from disk and from memory alike: the info, or the reason."""
    path = tmp_path / "probed"
    path.write_bytes(data)
    verdicts: list[AudioInfo | str] = []
    for run in (lambda: probe(path), lambda: probe_bytes(data)):
        try:
            verdicts.append(run())
        except PermanentError as exc:
            verdicts.append(exc.reason)
    assert verdicts[0] == verdicts[1]
    return verdicts[0]


def accepted(data: bytes, tmp_path: Path, seconds: float, *, within: float = 0.1) -> AudioInfo:
    info = judge(data, tmp_path)
    assert isinstance(info, AudioInfo), info
    assert info.duration == pytest.approx(seconds, abs=within)
    return info


def refused(data: bytes, tmp_path: Path, reason: str) -> str:
    verdict = judge(data, tmp_path)
    assert isinstance(verdict, str), verdict
    assert verdict.startswith(reason)
    return verdict


# ---------------------------------------------------------------- the contract


def test_wav_is_probed_from_its_bytes(tmp_path: Path) -> None:
    info = probe(write_wav(tmp_path / "a.wav", 12.0))
    assert (info.format, info.content_type) == ("wav", "audio/wav")
    assert info.duration == pytest.approx(12.0, abs=0.01)


def test_mp3_is_probed_from_its_bytes(tmp_path: Path) -> None:
    info = probe(write_mp3(tmp_path / "a.mp3", 30.0))
    assert (info.format, info.content_type) == ("mp3", "audio/mpeg")
    assert info.duration == pytest.approx(30.0, abs=0.03)


def test_mp3_with_id3_tag(tmp_path: Path) -> None:
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # empty 10-byte tag body
    accepted(tag + mp3_bytes(15.0), tmp_path, 15.0)


def test_name_does_not_decide(tmp_path: Path) -> None:
    wav_named_mp3 = tmp_path / "really-a-wav.mp3"
    wav_named_mp3.write_bytes(write_wav(tmp_path / "x.wav", 11.0).read_bytes())
    assert probe(wav_named_mp3).content_type == "audio/wav"


def test_16_bit_wav(tmp_path: Path) -> None:
    assert probe(write_int16_wav(tmp_path / "a.wav", 20.0)).duration == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is text\n" * 50, "not audio"),
        (b"fLaC" + bytes(100), "FLAC audio is not accepted"),
        (b"OggS" + bytes(100), "Ogg (Vorbis/Opus) audio is not accepted"),
        (b"\x00\x00\x00\x20ftypM4A " + bytes(100), "MP4/M4A audio is not accepted"),
        (b"FORM\x00\x00\x00\x00AIFF" + bytes(100), "AIFF audio is not accepted"),
        (b"\xff\xf1" + bytes(100), "AAC (ADTS) audio is not accepted"),
        (b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(20), "corrupt WAV"),
        (af.id3v2(padding=300), "corrupt MP3: an ID3 tag but no MPEG audio frames"),
        (af.id3v2() + b"fLaC" + bytes(100), "FLAC audio is not accepted"),
    ],
)
def test_refused_with_a_precise_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    refused(data, tmp_path, reason)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"fLaC" + bytes(100), "FLAC"),
        (b"FORM\x00\x00\x00\x00AIFC" + bytes(100), "AIFF"),
        (b"RIFX\x00\x00\x00\x24WAVEfmt " + bytes(100), "RIFX (big-endian WAV)"),
        (b"wvpk" + bytes(100), "WavPack"),
        (b"MAC " + bytes(100), "APE (Monkey's Audio)"),
        (af.pcm_wav(12.0, code=0x0011), "WAV holding IMA ADPCM"),
    ],
)
def test_formats_a_decoder_may_convert_are_told_apart(data: bytes, kind: str) -> None:
    """What the decoder is tried on (`OtherFormat`), and what it is never tried on."""
    with pytest.raises(OtherFormat) as caught:
        probe_bytes(data)
    assert caught.value.kind == kind
    for never in (b"hello, this is text\n" * 50, b"MThd" + bytes(100), b""):
        with pytest.raises(PermanentError) as plain:
            probe_bytes(never)
        assert not isinstance(plain.value, OtherFormat)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot read file"):
        probe(tmp_path / "missing.wav")


def test_sniff_names_layer_two_mpeg() -> None:
    assert sniff(b"\xff\xfd\x90\x00") == "MPEG audio layer I/II"
    assert sniff(b"\xff\xfb\x90\x00") == "mp3"
    assert sniff(b"RF64\xff\xff\xff\xffWAVEds64") == "wav"


def test_a_malformed_id3_tag_is_refused_not_a_crash() -> None:
    """An ID3 header whose size bytes are not synchsafe is no tag: the bytes after it are
    judged as they are (this once recursed until Python gave up)."""
    with pytest.raises(PermanentError):
        probe_bytes(b"ID3\x03\x00\x00\x80" + bytes(40))


# ---------------------------------------------------------------- limits and their reasons


@pytest.mark.parametrize(
    ("seconds", "verdict"),
    [
        (10.0, "too short: 10.0 s (must be longer than 10 s)"),
        (10.05, 10.05),
        (600.0, 600.0),
        (600.05, "too long: 600.05 s (must be at most 10 min)"),
        (600.000125, "too long: 600.0001 s (must be at most 10 min)"),  # one sample over
        (9.9999, "too short: 9.9999 s (must be longer than 10 s)"),
    ],
)
def test_limits_and_their_reasons(tmp_path: Path, seconds: float, verdict: float | str) -> None:
    data = af.pcm_wav(seconds, rate=8000, bits=8)
    if isinstance(verdict, str):
        assert judge(data, tmp_path) == verdict
    else:
        assert accepted(data, tmp_path, verdict, within=1e-9).duration == verdict


def test_mp3_limits_count_frames(tmp_path: Path) -> None:
    assert MP3.seconds(383) > 10 > MP3.seconds(382)
    accepted(af.vbr(383), tmp_path, MP3.seconds(383), within=1e-9)
    refused(af.vbr(382), tmp_path, "too short: 9.98 s")
    over = round(600 * 44100 / 1152) + 1
    refused(af.cbr(over, kbps=32), tmp_path, f"too long: {MP3.seconds(over):.2f} s")


# ---------------------------------------------------------------- WAV: the data really there


def test_truncated_wav_counts_the_bytes_present(tmp_path: Path) -> None:
    sixty = af.pcm_wav(60.0)  # the header says 60 s of 16-bit mono at 8 kHz
    assert judge(sixty[: 44 + 5 * 16000], tmp_path) == "too short: 5.0 s (must be longer than 10 s)"
    info = accepted(sixty[: 44 + 30 * 16000 + 1], tmp_path, 30.0, within=1e-9)
    assert info.length_from is LengthFrom.COUNT


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF])
def test_streamed_wav_data_runs_to_the_end(tmp_path: Path, placeholder: int) -> None:
    info = accepted(af.pcm_wav(12.0, data_size=placeholder), tmp_path, 12.0, within=1e-9)
    assert info.length_from is LengthFrom.COUNT


def test_wav_as_ffmpeg_writes_to_a_pipe(tmp_path: Path) -> None:
    data = af.riff(
        af.fmt_chunk(rate=8000),
        af.info_list(),
        af.chunk(b"data", af.pcm_data(12 * 8000), size=0xFFFFFFFF),
        size=0xFFFFFFFF,
    )
    accepted(data, tmp_path, 12.0, within=1e-9)


def test_chunks_before_data_are_skipped(tmp_path: Path) -> None:
    before = (
        af.info_list(),
        af.chunk(b"fact", (96000).to_bytes(4, "little")),
        af.chunk(b"JUNK", bytes(27)),
    )
    info = accepted(af.pcm_wav(12.0, before_data=before), tmp_path, 12.0, within=1e-9)
    assert info.length_from is LengthFrom.HEADER


def test_odd_chunk_without_its_pad_byte_is_corrupt(tmp_path: Path) -> None:
    """ffmpeg and libsndfile find no data chunk in such a file either."""
    unpadded = af.chunk(b"INAM", b"odd", pad=False)
    refused(af.pcm_wav(12.0, before_data=(unpadded,)), tmp_path, "corrupt WAV: no data chunk")


def test_chunks_after_data_are_not_audio(tmp_path: Path) -> None:
    after = (af.info_list(), af.chunk(b"id3 ", af.id3v2(padding=5000)))
    info = accepted(af.pcm_wav(12.0, after_data=after), tmp_path, 12.0, within=1e-9)
    assert info.length_from is LengthFrom.HEADER


def test_data_before_fmt(tmp_path: Path) -> None:
    data = af.chunk(b"data", af.pcm_data(12 * 8000))
    accepted(af.riff(data, af.fmt_chunk(rate=8000)), tmp_path, 12.0, within=1e-9)


@pytest.mark.parametrize("form", [b"RF64", b"BW64"])
def test_rf64_sizes_come_from_ds64(tmp_path: Path, form: bytes) -> None:
    info = accepted(af.rf64_wav(12.0, form=form), tmp_path, 12.0, within=1e-9)
    assert info.length_from is LengthFrom.HEADER
    streamed = af.rf64_wav(12.0, form=form, ds64_data_size=0)  # ffmpeg plays it as empty
    refused(streamed, tmp_path, "corrupt WAV: RF64 with a data size of 0 in ds64")
    truncated = af.rf64_wav(60.0, form=form)[: 80 + 44 + 20 * 16000]
    accepted(truncated, tmp_path, 20.0, within=0.01)


def test_rf64_without_ds64_is_corrupt(tmp_path: Path) -> None:
    data = af.pcm_wav(12.0).replace(b"RIFF", b"RF64", 1)
    refused(data, tmp_path, "corrupt WAV: RF64 without a ds64 chunk")


def test_wav_behind_an_id3_tag(tmp_path: Path) -> None:
    accepted(af.id3v2() + af.pcm_wav(12.0), tmp_path, 12.0, within=1e-9)


# ---------------------------------------------------------------- WAV: which codecs are sent


@pytest.mark.parametrize(
    ("subtype", "container", "codec"),
    [
        ("PCM_U8", "WAV", "PCM 8-bit"),
        ("PCM_16", "WAV", "PCM 16-bit"),
        ("PCM_24", "WAV", "PCM 24-bit"),
        ("PCM_32", "WAV", "PCM 32-bit"),
        ("FLOAT", "WAV", "IEEE float 32-bit"),
        ("DOUBLE", "WAV", "IEEE float 64-bit"),
        ("ALAW", "WAV", "A-law"),
        ("ULAW", "WAV", "µ-law"),
        ("PCM_16", "WAVEX", "PCM 16-bit"),
        ("FLOAT", "WAVEX", "IEEE float 32-bit"),
        ("ULAW", "WAVEX", "µ-law"),
    ],
)
def test_uncompressed_wav_is_sent(tmp_path: Path, subtype: str, container: str, codec: str) -> None:
    data = af.sndfile_bytes(12.5, subtype, container=container, channels=2)
    info = accepted(data, tmp_path, af.sndfile_frames(data) / 8000, within=1e-9)
    assert (info.codec, info.content_type) == (codec, "audio/wav")


@pytest.mark.parametrize(
    ("subtype", "codec"),
    [
        ("IMA_ADPCM", "IMA ADPCM"),
        ("MS_ADPCM", "Microsoft ADPCM"),
        ("GSM610", "GSM 6.10"),
        ("G721_32", "G.721 ADPCM"),
        ("NMS_ADPCM_16", "NMS VBXADPCM"),
    ],
)
def test_compressed_wav_is_refused_by_name(tmp_path: Path, subtype: str, codec: str) -> None:
    data = af.sndfile_bytes(30.0, subtype)
    assert af.sndfile_frames(data) > 8000 * 29  # real audio, long enough: only the codec is wrong
    assert judge(data, tmp_path) == (
        f"WAV holding {codec} audio is not accepted (only PCM, float, A-law or µ-law WAV)"
    )


@pytest.mark.parametrize(
    ("code", "extensible", "name"),
    [
        (0x0055, False, "MP3"),
        (0x0050, False, "MPEG layer I/II"),
        (0x0045, False, "G.726 ADPCM"),
        (0x0011, True, "IMA ADPCM"),
        (0x1234, False, "format 0x1234"),
    ],
)
def test_codec_is_read_from_the_format_code(
    tmp_path: Path, code: int, extensible: bool, name: str
) -> None:
    data = af.pcm_wav(30.0, code=code, extensible=extensible)
    refused(data, tmp_path, f"WAV holding {name} audio is not accepted")


def test_extensible_with_an_unknown_sub_format(tmp_path: Path) -> None:
    data = af.pcm_wav(30.0, extensible=True).replace(af.GUID_TAIL, bytes(14))
    refused(data, tmp_path, "WAV holding audio of an unknown extensible sub-format")


# ---------------------------------------------------------------- MP3: counting frames


def test_raw_lame_vbr_stream_is_counted(tmp_path: Path) -> None:
    """LAME writing to stdout: VBR with no Xing tag. Its first frame's bitrate says nothing
    about the rest."""
    info = accepted(af.lame_mp3(18.0), tmp_path, 18.0)
    assert info.length_from is LengthFrom.COUNT


def test_vbr_without_xing_is_not_extrapolated(tmp_path: Path) -> None:
    slow_start = af.vbr(round(18 * 44100 / 1152), start_kbps=320)
    accepted(slow_start, tmp_path, 18.0, within=0.03)
    long = af.vbr(round(1100 * 44100 / 1152), start_kbps=32, seed=4)
    refused(long, tmp_path, "too long: 1100.0")


def test_xing_tag_is_believed_when_the_bytes_agree(tmp_path: Path) -> None:
    data = af.xing(af.vbr(600), 600)
    info = accepted(data, tmp_path, af.gapless_seconds(600), within=1e-9)
    assert info.length_from is LengthFrom.HEADER


def test_info_tag_without_lame_tag(tmp_path: Path) -> None:
    data = af.xing(af.cbr(600), 600, tag=b"Info", lame=None)
    info = accepted(data, tmp_path, MP3.seconds(600), within=1e-9)
    assert info.length_from is LengthFrom.HEADER


def test_truncated_file_is_counted_not_its_tag(tmp_path: Path) -> None:
    """The tag says 250 s; the file holds a bit over 30 s of it."""
    frames = round(250 * 44100 / 1152)
    whole = af.xing(af.cbr(frames), frames)
    xing_frame = len(whole) - frames * MP3.length(128)
    cut = whole[: xing_frame + 1148 * MP3.length(128) + 100]  # and 100 bytes of one more
    # Decoders play the last frame cut short too (ffmpeg pads it with silence).
    info = accepted(cut, tmp_path, MP3.seconds(1149) - (576 + 529) / 44100, within=1e-9)
    assert info.length_from is LengthFrom.COUNT


def test_vbri_tag(tmp_path: Path) -> None:
    data = af.vbri(af.vbr(600), 600)
    info = accepted(data, tmp_path, MP3.seconds(600), within=1e-9)
    assert info.length_from is LengthFrom.HEADER
    whole = af.vbri(af.cbr(20000), 20000)  # the tag says 522 s
    tag_frame = len(whole) - 20000 * MP3.length(128)
    cut = whole[: tag_frame + 500 * MP3.length(128)]
    assert accepted(cut, tmp_path, MP3.seconds(500), within=1e-9).length_from is LengthFrom.COUNT


def test_files_joined_with_cat(tmp_path: Path) -> None:
    first, second = af.xing(af.vbr(300), 300), af.xing(af.vbr(200, seed=2), 200)
    joined = first + af.id3v2(padding=100) + second
    # The second tag frame is played as a (silent) frame; the first one's delay is dropped.
    expected = MP3.seconds(501) - (576 + 529) / 44100
    info = accepted(joined, tmp_path, expected, within=0.03)
    assert info.length_from is LengthFrom.COUNT


def test_files_of_two_sample_rates_joined(tmp_path: Path) -> None:
    other = af.Mpeg("1", 48000)
    joined = af.cbr(300) + af.cbr(300, mpeg=other, seed=1)
    accepted(joined, tmp_path, MP3.seconds(300) + other.seconds(300), within=1e-9)


@pytest.mark.parametrize(
    "tail",
    [
        af.id3v1(),
        af.apev2(),
        af.apev2(header=False),
        af.apev2(value=random.Random(1).randbytes(200_000)),  # cover art: 12 s at 128 kbit/s
        af.lyrics3v2() + af.id3v1(),
        af.lyrics3v1() + af.id3v1(),
        af.apev2() + af.id3v1(),
        b"TAG+" + bytes(223) + af.id3v1(),
        af.id3v2(version=4, footer=True, padding=50_000),
    ],
)
def test_trailing_tags_are_not_audio(tmp_path: Path, tail: bytes) -> None:
    accepted(af.cbr(400) + tail, tmp_path, MP3.seconds(400), within=1e-9)
    tagged = af.xing(af.vbr(400), 400) + tail
    info = accepted(tagged, tmp_path, af.gapless_seconds(400), within=1e-9)
    assert info.length_from is LengthFrom.HEADER


@pytest.mark.parametrize(
    "lead",
    [
        bytes(1000),  # leading zeros
        af.id3v2(padding=4000),  # padding inside the tag
        af.id3v2(padding=100) + bytes(3000),  # zeros after the tag
        af.id3v2(version=4, footer=True),
        af.id3v2() + af.id3v2(version=4),  # two tags
    ],
)
def test_audio_after_padding_and_tags(tmp_path: Path, lead: bytes) -> None:
    accepted(lead + af.vbr(400), tmp_path, MP3.seconds(400), within=1e-9)


def test_false_syncs_in_junk_are_passed_over(tmp_path: Path) -> None:
    rng = random.Random(7)
    junk = bytearray(rng.randbytes(40_000))
    for at in range(0, 39_000, 997):  # lone valid headers, and three chained frames
        junk[at : at + 4] = MP3.header(128)
    chained = af.cbr(3, kbps=64, mpeg=MPEG2)
    junk[20_000 : 20_000 + len(chained)] = chained
    accepted(bytes(junk) + af.vbr(400), tmp_path, MP3.seconds(400), within=1e-9)


def test_only_junk_is_not_audio(tmp_path: Path) -> None:
    junk = bytearray(random.Random(8).randbytes(50_000))
    for at in range(13, 49_000, 501):
        junk[at : at + 4] = MP3.header(128)
    refused(bytes(junk), tmp_path, "not audio")


@pytest.mark.parametrize("mpeg", [MPEG2, MPEG25, af.Mpeg("2", 16000, mono=True)])
def test_lower_sampling_frequencies_count_576_samples(tmp_path: Path, mpeg: af.Mpeg) -> None:
    frames = 2 * round(15 * mpeg.rate / 1152)  # 15 s at 576 samples per frame
    info = accepted(af.vbr(frames, mpeg=mpeg), tmp_path, 15.0, within=0.05)
    assert info.codec == f"MPEG-{mpeg.version} Layer III"
    tagged = af.xing(af.vbr(frames, mpeg=mpeg), frames, mpeg=mpeg)
    accepted(tagged, tmp_path, af.gapless_seconds(frames, mpeg), within=1e-9)


@pytest.mark.parametrize("rate", [22050, 24000, 16000])
def test_lame_at_lower_sampling_frequencies(tmp_path: Path, rate: int) -> None:
    info = accepted(af.lame_mp3(15.0, rate=rate, channels=1), tmp_path, 15.0)
    assert info.codec == "MPEG-2 Layer III"


def test_free_format_is_refused(tmp_path: Path) -> None:
    rng = random.Random(3)
    data = b"".join(MP3.free_format(900, rng) for _ in range(600))
    refused(data, tmp_path, "free-format MP3 is not accepted")


def test_layer_two_is_refused_even_after_junk(tmp_path: Path) -> None:
    frame = bytearray(MP3.frame(128, random.Random(1)))
    frame[1], frame[2] = 0xFD, 0x80  # layer II at 128 kbit/s: the same length
    layer2 = bytes(frame) * 500
    refused(layer2, tmp_path, "MPEG audio layer I/II is not accepted")
    refused(bytes(500) + layer2, tmp_path, "MPEG audio layer I/II is not accepted")


# ---------------------------------------------------------------- memory


def test_memory_stays_flat_on_large_files(tmp_path: Path) -> None:
    """A 20 MB VBR stream is walked frame by frame, a block at a time."""
    path = tmp_path / "big.mp3"
    path.write_bytes(af.vbr(round(400 * 44100 / 1152)) * 2)
    tracemalloc.start()
    try:
        info = measure(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.duration == pytest.approx(2 * MP3.seconds(round(400 * 44100 / 1152)))
    assert peak < 1_000_000
