from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PermanentError
from pipeline.probe import probe, sniff
from pipeline.samples import mp3_bytes, write_int16_wav, write_mp3, write_wav


def test_wav_is_probed_from_its_bytes(tmp_path: Path) -> None:
    info = probe(write_wav(tmp_path / "a.wav", 12.0))
    assert (info.format, info.content_type) == ("wav", "audio/wav")
    assert info.duration == pytest.approx(12.0, abs=0.01)


def test_mp3_is_probed_from_its_bytes(tmp_path: Path) -> None:
    info = probe(write_mp3(tmp_path / "a.mp3", 30.0))
    assert (info.format, info.content_type) == ("mp3", "audio/mpeg")
    assert info.duration == pytest.approx(30.0, abs=0.2)


def test_mp3_with_id3_tag(tmp_path: Path) -> None:
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)  # empty 10-byte tag body
    path = tmp_path / "tagged.mp3"
    path.write_bytes(tag + mp3_bytes(15.0))
    assert probe(path).format == "mp3"


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
    ],
)
def test_refused_with_a_precise_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "file.wav"
    path.write_bytes(data)
    with pytest.raises(PermanentError) as caught:
        probe(path)
    assert caught.value.reason.startswith(reason)


def test_duration_limits(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"too short: 10.0 s"):
        probe(write_wav(tmp_path / "ten.wav", 10.0))  # must be *longer* than 10 s
    assert probe(write_wav(tmp_path / "ok.wav", 10.5)).duration > 10
    assert probe(write_wav(tmp_path / "max.wav", 600.0, rate=1000)).duration == 600.0
    with pytest.raises(PermanentError, match="too long"):
        probe(write_wav(tmp_path / "long.wav", 601.0, rate=1000))


@pytest.mark.parametrize(
    ("seconds", "reason"),
    [
        (10.0, "too short: 10.0 s (must be longer than 10 s)"),
        (9.9999, "too short: 9.9999 s (must be longer than 10 s)"),
        (600.05, "too long: 600.05 s (must be at most 10 min)"),
        (600.000125, "too long: 600.0001 s (must be at most 10 min)"),  # one sample over
    ],
)
def test_reasons_never_contradict_the_limit(tmp_path: Path, seconds: float, reason: str) -> None:
    with pytest.raises(PermanentError) as caught:
        probe(write_wav(tmp_path / "a.wav", seconds, rate=8000))
    assert caught.value.reason == reason


def test_sniff_names_layer_two_mpeg() -> None:
    assert sniff(b"\xff\xfd\x90\x00") == "MPEG audio layer I/II"
    assert sniff(b"\xff\xfb\x90\x00") == "mp3"
