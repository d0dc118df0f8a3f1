"""End to end: a file still being written when the run reaches it (the nightly job starting while
a copy is in progress), and `--min-age`, which leaves such files alone altogether.

The service is the second stand-in (Werkzeug), which counts an upload only when its body arrived
whole: a request the client aborts half-way is recorded as incomplete, never as an upload."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_wav
from tests.conftest import export, run_cli
from tests.thirdparty import ThirdPartyServer, running

pytestmark = pytest.mark.e2e


@pytest.fixture
def thirdparty() -> Iterator[ThirdPartyServer]:
    with running() as server:
        yield server


def wav_bytes(size: int) -> bytes:
    """A whole WAV of about `size` bytes: 44.1 kHz 16-bit stereo noise, its header complete."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(os.urandom((size - 44) // 4 * 4))
    return buffer.getvalue()


class SlowCopy(threading.Thread):
    """Writes `data` to `path` as a copy in progress does: `head` bytes at once, then a little at
    a time, until `finish()` writes the rest."""

    def __init__(self, path: Path, data: bytes, *, head: int) -> None:
        super().__init__(daemon=True)
        self.path, self.data = path, data
        path.write_bytes(data[:head])
        self.written = head
        self.ran_out = False  # the copy ended on its own before `finish`: the test proved nothing
        self._finish = threading.Event()

    def run(self) -> None:
        with open(self.path, "ab", buffering=0) as out:
            while not self._finish.is_set():
                if self.written + 1024 > len(self.data):
                    self.ran_out = True
                    break
                out.write(self.data[self.written : self.written + 1024])
                self.written += 1024
                time.sleep(0.002)
            out.write(self.data[self.written :])

    def finish(self) -> None:
        self._finish.set()
        self.join(30)


def test_a_file_still_being_written_is_never_sent_and_goes_up_once_the_copy_ends(
    tmp_path: Path, thirdparty: ThirdPartyServer
) -> None:
    folder = tmp_path / "cat" / "song"
    folder.mkdir(parents=True)
    data = wav_bytes(10_000_000)
    growing = folder / "take.wav"
    copy = SlowCopy(growing, data, head=2_000_000)  # well past the 256 KiB read whole
    copy.start()
    try:
        first = run_cli("run", "cat", "--api-url", thirdparty.url, cwd=tmp_path)
        assert not copy.ran_out, "the copy finished before the run did: make it longer"
    finally:
        copy.finish()
    assert "Traceback" not in first.stderr
    assert first.code == 6, first.stdout + first.stderr
    summary = first.stdout.split("left for next run 1\n", 1)[1]
    assert "still being written" in summary or "changed since it was hashed" in summary
    assert thirdparty.uploads() == []  # nothing the ledger does not hold was received whole

    second = run_cli("run", "cat", "--api-url", thirdparty.url, cwd=tmp_path)
    assert second.code == 0, second.stderr
    (done,) = export(tmp_path)
    (upload,) = thirdparty.uploads()
    assert done["status"] == "done"
    assert upload["sha256"] == done["sha256"] == hashlib.sha256(data).hexdigest()
    assert upload["size"] == len(data) == growing.stat().st_size


def test_a_file_that_grows_while_it_is_sent_is_cut_off_and_never_received_whole(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cat" / "song"
    folder.mkdir(parents=True)
    data = wav_bytes(10_000_000)
    growing = folder / "take.wav"
    head = 8_000_000  # more than the socket buffers take (about 5 MB) while the body is held
    growing.write_bytes(data[:head])  # a copy that has stalled: hashed whole, then sent
    with running(hold=True) as service, ThreadPoolExecutor(1) as pool:
        first_run = pool.submit(run_cli, "run", "cat", "--api-url", service.url, cwd=tmp_path)
        _wait_for(lambda: service.held() == 1 or first_run.done())
        with growing.open("ab") as out:  # the copy goes on while the upload is in flight
            out.write(data[head : head + 500_000])
        service.release()
        first = first_run.result(timeout=60)
        (request,) = service.requests()
        assert first.code == 6, first.stdout + first.stderr
        assert "Traceback" not in first.stderr
        assert "changed since it was hashed" in first.stdout.split("left for next run 1\n")[1]
        assert request["outcome"].startswith("incomplete")
        assert request["received"] < request["content_length"]

        with growing.open("ab") as out:
            out.write(data[head + 500_000 :])
        second = run_cli("run", "cat", "--api-url", service.url, cwd=tmp_path)
        assert second.code == 0, second.stderr
        (upload,) = service.uploads()
    (done,) = export(tmp_path)
    assert upload["sha256"] == done["sha256"] == hashlib.sha256(data).hexdigest()


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_min_age_leaves_a_just_written_file_alone_and_takes_an_old_one(
    tmp_path: Path, thirdparty: ThirdPartyServer
) -> None:
    folder = tmp_path / "cat" / "song"
    young = write_wav(folder / "young.wav", 10.5, seed=1)
    old = write_wav(folder / "old.wav", 10.5, seed=2)
    an_hour_and_more_ago = time.time() - 2 * 3600
    os.utime(old, (an_hour_and_more_ago, an_hour_and_more_ago))

    result = run_cli("run", "cat", "--api-url", thirdparty.url, "--min-age", "1h", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert [u["filename_werkzeug"] for u in thirdparty.uploads()] == ["old.wav"]
    records = export(tmp_path)
    assert [(Path(r["source"]).name, r["status"]) for r in records] == [("old.wav", "done")]
    assert "too new, left     1" in result.stdout
    assert "failed now        0" in result.stdout
    assert young.exists()
