"""A catalogue of FLAC, AIFF and M4A masters through the real CLI, against the sandbox: decoded
to WAV and sent, skipped on a rerun, refused with `--convert never`, counted by a dry run;
URLs the same way; the decoded WAVs removed whatever ends the run."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

import pytest

from pipeline.content import decode
from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    run_cli,
    start_cli,
    start_sandbox,
    stop_sandbox,
    wait_until,
)
from tests.e2e.test_e2e_manifest import write_manifest
from tests.e2e.test_e2e_reliability import attempts_recorded
from tests.encoders import need, run
from tests.fileserver import FileServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not decode.available(), reason="the decoder (av) is not installed"),
]
KINDS = ("flac", "aiff", "alac", "aac")


def masters(folder: Path, count: int = 1, seconds: float = 11.0) -> list[Path]:
    """`count` sets of FLAC (16-bit, the flac CLI), AIFF (24-bit), ALAC and AAC in M4A (ffmpeg)
    of the same seeded noise and a tone, a different tone for each set."""
    need("sox", "flac", "ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    work = folder.parent / ".made"  # hidden: a crawl skips it
    work.mkdir(exist_ok=True)
    made = []
    for n in range(count):
        src = work / f"src{n}.wav"
        synth = ["synth", f"{seconds}", "pinknoise", "synth", f"{seconds}", "sine", "mix"]
        run(["sox", "-R", "-n", "-r", "44100", "-b", "24", "-c", "2", str(src), *synth])
        run(["sox", "-R", str(src), "-b", "16", str(work / f"src{n}_16.wav")])
        flac = folder / f"t{n}.flac"
        run(["flac", "-s", "-f", "-o", str(flac), str(work / f"src{n}_16.wav")])
        ff = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-af", f"volume={0.5 + n / 100}"]
        run([*ff, "-c:a", "pcm_s24be", str(folder / f"t{n}.aiff")])
        run([*ff, "-c:a", "alac", str(folder / f"t{n}_alac.m4a")])
        run([*ff, "-c:a", "aac", "-b:a", "128k", str(folder / f"t{n}_aac.m4a")])
        made += [flac, folder / f"t{n}.aiff", folder / f"t{n}_alac.m4a", folder / f"t{n}_aac.m4a"]
    return made


def flacs(folder: Path, count: int, seconds: float) -> None:
    """`count` FLACs of the same audio, told apart by a tag (so each is its own content)."""
    need("sox", "flac")
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / ".made").mkdir(exist_ok=True)
    src = folder.parent / ".made" / "src.wav"
    synth = ["synth", f"{seconds}", "pinknoise", "vol", "0.3"]
    run(["sox", "-R", "-n", "-r", "44100", "-b", "16", "-c", "2", str(src), *synth])
    for n in range(count):
        run(["flac", "-s", "-f", f"--tag=TITLE={n}", "-o", str(folder / f"t{n}.flac"), str(src)])


def env_with_tmp(tmp_path: Path) -> tuple[dict[str, str], Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return {**cli_env(), "TMPDIR": str(scratch)}, scratch


def test_masters_are_decoded_sent_recorded_and_skipped_on_a_rerun(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    files = masters(tmp_path / "cat" / "song")
    bad = tmp_path / "cat" / "song" / "bad.flac"
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # a bad frame in the middle
    bad.write_bytes(bytes(raw))
    env, scratch = env_with_tmp(tmp_path)
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code == 1, result.stderr  # the bad FLAC failed; the run went on
    assert "converted to WAV  4 files" in result.stdout
    received = [r for r in sandbox.requests() if r["outcome"] == "ok"]
    assert sorted(r["filename"] for r in received) == ["t0.wav", "t0.wav", "t0_aac.wav"] + [
        "t0_alac.wav"
    ]
    assert {r["content_type"] for r in received} == {"audio/wav"}
    records = {Path(r["source"]).name: r for r in export(tmp_path)}
    assert records["bad.flac"]["status"] == "failed"
    assert "FLAC" in records["bad.flac"]["error"] and "\n" not in records["bad.flac"]["error"]
    for path, kind in zip(files, KINDS, strict=True):
        record = records[path.name]
        assert record["status"] == "done"
        assert record["converted_from"] == kind
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["sent_sha256"] in {r["sha256"] for r in received}  # what the sandbox got
    assert list(scratch.iterdir()) == []  # every decoded WAV removed
    again = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert again.code == 0, again.stderr
    assert len(sandbox.requests()) == len(received)  # nothing sent twice
    status = run_cli("status", cwd=tmp_path)
    for kind in KINDS:
        assert any(line.split()[:2] == [kind, "1"] for line in status.stdout.splitlines()), kind


def test_convert_never_refuses_them_naming_the_codec(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    masters(tmp_path / "cat" / "song")
    result = run_cli("run", "cat", "--api-url", sandbox.url, "--convert", "never", cwd=tmp_path)
    assert result.code == 1, result.stderr
    assert sandbox.requests() == []
    errors = {Path(r["source"]).name: r["error"] for r in export(tmp_path)}
    assert errors["t0.flac"].startswith("FLAC audio, codec flac, is not sent as it is")
    assert "codec alac" in errors["t0_alac.m4a"] and "codec aac" in errors["t0_aac.m4a"]
    assert all("--convert auto would send it as WAV" in e for e in errors.values())


def test_a_dry_run_says_what_would_be_converted_and_the_bytes_sent(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    files = masters(tmp_path / "cat" / "song")
    env, scratch = env_with_tmp(tmp_path)
    dry = run_cli("run", "cat", "--dry-run", cwd=tmp_path, env=env)
    assert dry.code == 0, dry.stderr
    assert "would convert to WAV: 4 files (" in dry.stdout
    assert not (tmp_path / "ingest.db").exists()
    assert list(scratch.iterdir()) == []
    real = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert real.code == 0, real.stderr
    sent = sum(r["size"] for r in sandbox.requests() if r["outcome"] == "ok")
    assert f"would upload: {len(files)} files, {sent / 1e6:.1f} MB" in dry.stdout


def test_a_flac_url_is_downloaded_decoded_and_sent(tmp_path: Path, sandbox: SandboxServer) -> None:
    served = tmp_path / "served"
    flac = masters(served)[0]
    env, scratch = env_with_tmp(tmp_path)
    with FileServer(served) as server:
        url = server.url(f"/files/{flac.name}")
        write_manifest(tmp_path / "m.csv", [{"url": url, "purpose": "song"}])
        result = run_cli("run", "m.csv", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    (record,) = export(tmp_path)
    assert (record["status"], record["converted_from"]) == ("done", "flac")
    assert record["sha256"] == hashlib.sha256(flac.read_bytes()).hexdigest()
    assert [r["sha256"] for r in sandbox.requests()] == [record["sent_sha256"]]
    assert list(scratch.iterdir()) == []


def test_without_the_decoder_the_reason_says_how_to_install_it(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    masters(tmp_path / "cat" / "song")
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "av.py").write_text("raise ImportError('hidden for this test')\n")
    env = {**cli_env(), "PYTHONPATH": str(hidden)}
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code != 0
    errors = {r["error"] for r in export(tmp_path)}
    assert all("pip install 'ingest[decode]'" in e for e in errors), errors
    assert {r["retryable"] for r in export(tmp_path)} == {True}  # tried again once installed
    assert sandbox.requests() == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_decoded_wavs_are_removed_after_a_signal_or_by_the_next_run(
    tmp_path: Path, sandbox: SandboxServer, how: str
) -> None:
    flacs(tmp_path / "cat" / "song", count=8, seconds=60)
    env, scratch = env_with_tmp(tmp_path)
    proc = start_cli(
        tmp_path, "run", "cat", "--api-url", sandbox.url, "--concurrency", "1", env=env
    )
    wait_until(lambda: any(f.is_dir() and any(f.iterdir()) for f in scratch.iterdir()), 60)
    proc.send_signal(getattr(signal, how))
    proc.communicate(timeout=60)
    if how == "SIGTERM":
        assert proc.returncode == 143
        assert list(scratch.iterdir()) == []
        return
    assert list(scratch.iterdir()) != []  # killed: nothing could clean up
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    assert list(scratch.iterdir()) == []


def test_a_decode_past_its_time_bound_is_left_for_the_next_run(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    flacs(tmp_path / "cat" / "song", count=1, seconds=11)
    env, scratch = env_with_tmp(tmp_path)
    slow = {**env, "INGEST_DECODE_TIMEOUT": "0.001"}
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=slow)
    assert result.code == 6, result.stderr  # left for the next run
    (record,) = export(tmp_path)
    assert record["error"] == "decoding took longer than 0.001 s"
    assert (record["status"], record["retryable"]) == ("failed", True)
    assert list(scratch.iterdir()) == []
    again = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert again.code == 0, again.stderr
    assert [r["outcome"] for r in sandbox.requests()] == ["ok"]


def test_the_same_master_twice_is_decoded_and_sent_once(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    song = tmp_path / "cat" / "song"
    flacs(song, count=1, seconds=11)
    (song / "copy").mkdir()
    (song / "copy" / "again.flac").write_bytes((song / "t0.flac").read_bytes())
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "same bytes again  1" in result.stdout
    assert "converted to WAV  1 files (flac 1)" in result.stdout
    assert len(sandbox.requests()) == 1
    records = export(tmp_path)
    assert {r["status"] for r in records} == {"done"}
    assert len({(r["voice_id"], r["sent_sha256"]) for r in records}) == 1


def test_on_a_postgresql_ledger_status_and_export_say_what_was_converted(
    tmp_path: Path, sandbox: SandboxServer, pg_url: str
) -> None:
    masters(tmp_path / "cat" / "song")
    result = run_cli("run", "cat", "--db", pg_url, "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    records = export(tmp_path, pg_url)
    assert sorted(r["converted_from"] for r in records) == sorted(KINDS)
    received = {r["sha256"] for r in sandbox.requests()}
    assert {r["sent_sha256"] for r in records} == received
    status = run_cli("status", "--db", pg_url, "--json", cwd=tmp_path)
    converted = json.loads(status.stdout)["converted"]
    assert {kind: c["done"] for kind, c in converted.items()} == dict.fromkeys(KINDS, 1)


def test_a_second_signal_aborts_and_still_removes_the_decoded_wavs(tmp_path: Path) -> None:
    flacs(tmp_path / "cat" / "song", count=2, seconds=11)
    env, scratch = env_with_tmp(tmp_path)
    hung = start_sandbox(tmp_path, "--hang-rate", "1")  # an upload in flight holds its WAV
    try:
        args = ("run", "cat", "--api-url", hung.url, "--grace", "60", "--timeout", "60")
        proc = start_cli(tmp_path, *args, env=env)
        wait_until(lambda: attempts_recorded(tmp_path / "ingest.db") >= 1, 60)
        time.sleep(0.3)  # the request is on the wire; the sandbox will never answer it
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None and _held(scratch)  # waiting for the upload in flight
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert list(scratch.iterdir()) == []
    finally:
        stop_sandbox(hung)


def _held(scratch: Path) -> bool:
    return any(f.is_dir() and any(f.iterdir()) for f in scratch.iterdir())
