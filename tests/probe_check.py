"""`python -m tests.probe_check DIR`: the probe against a full decode, run by hand (not in CI).

Makes a few hundred files in DIR, in classes, with ffmpeg, lame and this project's own writers
(`tests.audiofiles`), then for each file compares:

    - the probe's verdict (sent or refused) with the truth: a codec the service takes, and a
      length, by a full ffmpeg decode (samples counted), longer than 10 s and at most 600 s;
    - the probe's length (`measure`, whatever the verdict) with the decoded length.

and prints per class: files, verdicts agreeing, the largest length error, then every
disagreement. Files and their decoded lengths are kept in DIR (`manifest.jsonl`): a second run
on the same DIR probes them again without making or decoding anything.

Needs ffmpeg and lame on PATH; without them it says so in one line and does nothing.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import soundfile

from pipeline.content.probe import MAX_SECONDS, MIN_SECONDS, measure, probe
from pipeline.core.errors import PermanentError
from tests import audiofiles as af

# Lengths asked of the encoders: boundaries, ordinary songs and the long limit. The long ones
# are made at 8 kHz mono so that encoding them stays quick.
DURATIONS = (3.0, 9.9, 9.97, 10.0, 10.03, 10.1, 14.2, 23.7, 41.3, 599.9, 600.0, 600.1)
LONG = 100.0


@dataclasses.dataclass(frozen=True)
class Job:
    """One file to make: its class, whether its codec is one the service takes, and how."""

    cls: str
    sent: bool
    name: str
    make: Callable[[Path], None]


@dataclasses.dataclass
class Result:
    cls: str
    name: str
    due: bool  # the truth: a codec the service takes and a decoded length within the limits
    decoded: float
    verdict: str  # "sent" or the probe's reason
    measured: float | None

    @property
    def agrees(self) -> bool:
        return self.due == (self.verdict == "sent")


def run(*args: str, stdout: Path | None = None) -> None:
    if stdout is None:
        subprocess.run(args, check=True, capture_output=True)
        return
    with stdout.open("wb") as out:
        subprocess.run(args, check=True, stdout=out, stderr=subprocess.DEVNULL)


def ffmpeg(*args: str, stdout: Path | None = None) -> None:
    run("ffmpeg", "-nostdin", "-v", "error", "-y", *args, stdout=stdout)


class Sources:
    """Music-like PCM WAV sources, made once per (seconds, rate, channels)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
        path = self.folder / f"src-{seconds}-{rate}-{channels}.wav"
        if not path.exists():
            signal = af.music(round(seconds * rate), channels, rate, seed=int(seconds * 7))
            soundfile.write(path, signal, rate, subtype="PCM_16")
        return path


def decoded_seconds(path: Path) -> float:
    """Seconds ffmpeg decodes from `path` (0 if it decodes nothing), counted as samples."""
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "quiet", "-i", str(path), "-map", "0:a:0", "-ac", "1"]
        + ["-c:a", "pcm_s16le", "-f", "wav", "-"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    head = proc.stdout.read(4096)
    total = len(head) + sum(len(block) for block in iter(lambda: proc.stdout.read(1 << 20), b""))
    proc.wait()
    data = head.find(b"data")
    if len(head) < 44 or data < 0:
        return 0.0
    rate = int.from_bytes(head[24:28], "little")
    return (total - data - 8) / 2 / rate


# ---------------------------------------------------------------- the classes


def wav_jobs(src: Sources, count: int) -> Iterator[Job]:
    pcm = ("pcm_s16le", "pcm_u8", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le")
    for i, seconds in _durations(count):
        rate, ch = (8000, 1) if seconds > LONG else ((8000, 22050, 44100)[i % 3], 2)
        s = src.get(seconds, rate, ch)
        codec = pcm[i % len(pcm)]
        yield Job("wav-pcm", True, f"{i}-{codec}.wav", _ff(s, "-c:a", codec))
        law = ("pcm_alaw", "pcm_mulaw")[i % 2]
        yield Job("wav-alaw-mulaw", True, f"{i}-{law}.wav", _ff(s, "-c:a", law, "-ar", "8000"))
        layout = ("-ac", str(3 + i % 4)) if i % 2 else ("-c:a", "pcm_s24le")
        yield Job("wav-extensible", True, f"{i}.wav", _ff(s, *layout))
        yield Job("wav-pipe", True, f"{i}.wav", _ff_pipe(s, "-c:a", "pcm_s16le", "-f", "wav"))
        yield Job("wav-size-0", True, f"{i}.wav", _patched(s, _zero_sizes))
        yield Job("wav-truncated", True, f"{i}.wav", _truncated_wav(src, seconds, rate, ch, i))
        form = ("-rf64", "always")
        yield Job("wav-rf64", True, f"{i}.wav", _ff(s, *form))
        yield Job("wav-rf64-pipe", True, f"{i}.wav", _ff_pipe(s, *form, "-f", "wav"))
        yield Job("wav-chunks", True, f"{i}.wav", _odd_chunks(seconds, i))
        for cls, codecs in (
            ("wav-adpcm", ("adpcm_ima_wav", "adpcm_ms", "adpcm_yamaha", "sf:IMA_ADPCM")),
            ("wav-gsm", ("libgsm_ms", "sf:GSM610")),
            ("wav-g726", ("g726", "sf:G721_32")),
            ("wav-mpeg", ("libmp3lame", "mp2")),
        ):
            codec = codecs[i % len(codecs)]
            yield Job(cls, False, f"{i}-{codec}.wav", _coded_wav(src, seconds, codec))


def mp3_jobs(src: Sources, count: int) -> Iterator[Job]:
    for i, seconds in _durations(count):
        s = src.get(seconds, *((8000, 1) if seconds > LONG else (44100, 2)))
        vbr, cbr = f"-V{i % 10}", f"-b{(32, 64, 96, 128, 192, 256, 320)[i % 7]}"
        yield Job("mp3-lame-cbr", True, f"{i}.mp3", _lame(s, cbr))
        yield Job("mp3-lame-vbr", True, f"{i}.mp3", _lame(s, vbr))
        yield Job("mp3-lame-crc", True, f"{i}.mp3", _lame(s, "-p", (vbr, cbr)[i % 2]))
        yield Job("mp3-lame-stdout", True, f"{i}.mp3", _lame_stdout(s, (vbr, cbr)[i % 2]))
        quality = ("-q:a", str(i % 10)) if i % 2 else ("-b:a", "128k")
        yield Job("mp3-ffmpeg", True, f"{i}.mp3", _ff(s, "-c:a", "libmp3lame", *quality))
        pipe = _ff_pipe(s, "-c:a", "libmp3lame", *quality, "-f", "mp3")
        yield Job("mp3-ffmpeg-pipe", True, f"{i}.mp3", pipe)
        yield Job("mp3-cat", True, f"{i}.mp3", _joined(src, seconds, i))
        yield Job("mp3-truncated", True, f"{i}.mp3", _cut(_lame(s, (vbr, cbr)[i % 2]), i))
        yield Job("mp3-tail-tags", True, f"{i}.mp3", _wrapped(_lame(s, vbr), tail=_TAILS[i % 6]))
        yield Job("mp3-lead", True, f"{i}.mp3", _wrapped(_lame(s, vbr), lead=_LEADS[i % 5]))
        yield Job("mp3-junk", True, f"{i}.mp3", _wrapped(_lame(s, cbr), lead=_junk(i)))
        yield Job("mp3-lsf", True, f"{i}.mp3", _lsf(src, seconds, i))
        yield Job("mp3-frames", True, f"{i}.mp3", _frames(seconds, i))
        yield Job("mp3-free-format", True, f"{i}.mp3", _lame(s, "--freeformat", "-b", "200"))
        yield Job("mp2-named-mp3", False, f"{i}.mp3", _ff(s, "-c:a", "mp2", "-f", "mp2"))


def _durations(count: int) -> Iterator[tuple[int, float]]:
    for i in range(count):
        yield i, DURATIONS[i % len(DURATIONS)]


Maker = Callable[[Path], None]


def _ff(source: Path, *args: str) -> Maker:
    return lambda out: ffmpeg("-i", str(source), *args, str(out))


def _ff_pipe(source: Path, *args: str) -> Maker:
    return lambda out: ffmpeg("-i", str(source), *args, "pipe:", stdout=out)


def _lame(source: Path, *args: str) -> Maker:
    return lambda out: run("lame", "--quiet", *args, str(source), str(out))


def _lame_stdout(source: Path, *args: str) -> Maker:
    return lambda out: run("lame", "--quiet", *args, str(source), "-", stdout=out)


def _patched(source: Path, patch: Callable[[bytes], bytes]) -> Maker:
    def make(out: Path) -> None:
        ffmpeg("-i", str(source), "-c:a", "pcm_s16le", str(out))
        out.write_bytes(patch(out.read_bytes()))

    return make


def _zero_sizes(data: bytes) -> bytes:
    at = data.find(b"data")
    return data[:4] + bytes(4) + data[8 : at + 4] + bytes(4) + data[at + 8 :]


def _truncated_wav(src: Sources, seconds: float, rate: int, ch: int, i: int) -> Maker:
    longer = src.get(min(seconds * 3, 700.0), rate, ch)
    return _cut(_ff(longer, "-t", str(seconds), "-c:a", "pcm_s16le"), i, keep=(0.4, 1.0))


def _cut(make: Maker, i: int, keep: tuple[float, float] = (0.2, 0.9)) -> Maker:
    def cut(out: Path) -> None:
        make(out)
        data = out.read_bytes()
        share = random.Random(i).uniform(*keep)
        out.write_bytes(data[: int(len(data) * share)])

    return cut


def _odd_chunks(seconds: float, i: int) -> Maker:
    before = (af.info_list(), af.chunk(b"fact", b"\x00\x00\x00\x00"), af.chunk(b"JUNK", bytes(27)))
    variants = (
        lambda: af.pcm_wav(seconds, before_data=before, seed=i),
        lambda: af.pcm_wav(seconds, after_data=(af.info_list(),), bits=8, seed=i),
        lambda: af.riff(af.chunk(b"data", af.pcm_data(round(seconds * 8000))), af.fmt_chunk()),
        lambda: af.pcm_wav(seconds, extensible=True, data_size=0xFFFFFFFF, seed=i),
        lambda: af.rf64_wav(seconds, form=b"BW64", seed=i),
    )
    return lambda out: out.write_bytes(variants[i % len(variants)]())


def _coded_wav(src: Sources, seconds: float, codec: str) -> Maker:
    if codec.startswith("sf:"):
        return lambda out: out.write_bytes(af.sndfile_bytes(seconds, codec[3:]))
    rate = 16000 if codec == "mp2" else 8000  # the lowest rate layer II has
    return _ff(src.get(seconds, rate, 1), "-c:a", codec, "-ar", str(rate), "-ac", "1")


def _joined(src: Sources, seconds: float, i: int) -> Maker:
    parts = (
        (seconds * 0.6, seconds * 0.4) if i % 2 else (seconds * 0.3, seconds * 0.3, seconds * 0.4)
    )
    settings = (("-V2",), ("-b128",), ("-V5", "--tt", "part"), ("-b64",))
    rate, ch = (8000, 1) if seconds > LONG else (44100, 2)
    sources = [src.get(round(part, 3), rate, ch) for part in parts]

    def make(out: Path) -> None:
        data = b""
        for n, source in enumerate(sources):
            piece = out.with_suffix(f".part{n}")
            _lame(source, *settings[(i + n) % 4])(piece)
            data += piece.read_bytes()
            piece.unlink()
        out.write_bytes(data)

    return make


_TAILS = (
    af.id3v1(),
    af.apev2() + af.id3v1(),
    af.apev2(value=random.Random(1).randbytes(150_000)),
    af.lyrics3v2() + af.id3v1(),
    af.lyrics3v1(),
    af.id3v2(version=4, footer=True, padding=20_000),
)
_LEADS = (
    bytes(2000),
    af.id3v2(padding=8000),
    af.id3v2(padding=100) + bytes(5000),
    af.id3v2(version=4, footer=True),
    af.id3v2() + af.id3v2(version=4),
)


def _junk(i: int) -> bytes:
    junk = bytearray(random.Random(i).randbytes(10_000 + 3_000 * i))
    for at in range(5, len(junk) - 4, 777):
        junk[at : at + 4] = af.MP3.header(128)
    return bytes(junk)


def _wrapped(make: Maker, *, lead: bytes = b"", tail: bytes = b"") -> Maker:
    def wrap(out: Path) -> None:
        make(out)
        out.write_bytes(lead + out.read_bytes() + tail)

    return wrap


def _lsf(src: Sources, seconds: float, i: int) -> Maker:
    rate = (8000, 11025, 12000, 16000, 22050, 24000)[i % 6]
    mode = (f"-V{i % 10}",) if i % 2 else ("-b", "32")
    make = _lame(src.get(seconds, rate, 1), *mode)
    return _lame_stdout(src.get(seconds, rate, 1), *mode) if i % 3 == 0 else make


def _frames(seconds: float, i: int) -> Maker:
    mpeg = (af.MP3, af.MPEG2, af.MPEG25)[i % 3]
    frames = round(seconds * mpeg.rate / mpeg.samples)
    if i % 2:
        return lambda out: out.write_bytes(af.vbr(frames, mpeg=mpeg, seed=i, start_kbps=32))
    return lambda out: out.write_bytes(af.vbri(af.vbr(frames, mpeg=mpeg, seed=i), frames))


# ---------------------------------------------------------------- making, decoding, judging


def make_all(folder: Path, per_class: int) -> list[dict[str, object]]:
    src = Sources(folder / "sources")
    # Sources are made here, while the jobs are listed, so that no two threads write one.
    jobs = list(wav_jobs(src, per_class)) + list(mp3_jobs(src, per_class))

    def one(job: Job) -> dict[str, object] | None:
        path = folder / job.cls / job.name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            job.make(path)
        except subprocess.CalledProcessError as exc:
            print(f"probe_check: could not make {job.cls}/{job.name}: {exc}")
            return None
        decoded = decoded_seconds(path)
        return {"cls": job.cls, "path": str(path), "sent": job.sent, "decoded": decoded}

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return [entry for entry in pool.map(one, jobs) if entry is not None]


def judge(entry: dict[str, object]) -> Result:
    path, decoded = Path(str(entry["path"])), float(str(entry["decoded"]))
    truth = bool(entry["sent"]) and MIN_SECONDS < decoded <= MAX_SECONDS
    try:
        probe(path)
        verdict = "sent"
    except PermanentError as exc:
        verdict = exc.reason
    try:
        measured: float | None = measure(path).duration
    except PermanentError:
        measured = None
    return Result(str(entry["cls"]), path.name, truth, decoded, verdict, measured)


def report(results: list[Result]) -> None:
    print(f"{'class':<18} {'files':>5} {'agree':>7} {'max |err| s':>12}  worst")
    for cls in dict.fromkeys(r.cls for r in results):
        _row(cls, [r for r in results if r.cls == cls])
    _row("all", results)
    print("\nverdicts, lengths as N:")
    reasons = collections.Counter(re.sub(r": [\d.]+ s", ": N s", r.verdict) for r in results)
    for reason, count in reasons.most_common():
        print(f"{count:>5}  {reason}")
    for r in results:
        if not r.agrees:
            print(f"DISAGREE {r.cls}/{r.name}: decoded {r.decoded:.3f} s, probe: {r.verdict}")


def _row(cls: str, results: list[Result]) -> None:
    agree = sum(r.agrees for r in results)
    errors = [(abs(r.measured - r.decoded), r.name) for r in results if _comparable(r)]
    worst = max(errors, default=(0.0, "-"))
    print(f"{cls:<18} {len(results):>5} {agree:>3}/{len(results):<3} {worst[0]:>12.3f}  {worst[1]}")


def _comparable(result: Result) -> bool:
    return result.measured is not None and result.decoded > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.probe_check", description=__doc__)
    parser.add_argument("folder", type=Path, help="where the files are made and kept")
    parser.add_argument("--per-class", type=int, default=12, help="files per class")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("ffmpeg", "lame") if shutil.which(tool) is None]
    if missing:
        print(f"probe_check: skipped, {' and '.join(missing)} not found on PATH")
        return 0
    manifest = args.folder / "manifest.jsonl"
    if manifest.exists():
        entries = [json.loads(line) for line in manifest.read_text().splitlines()]
        print(f"probe_check: {len(entries)} files already made in {args.folder}")
    else:
        entries = make_all(args.folder, args.per_class)
        manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    report([judge(entry) for entry in entries])
    return 0


if __name__ == "__main__":
    sys.exit(main())
