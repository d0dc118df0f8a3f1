"""A run's local files: each hashed once, and no more large ones at once than allowed."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.content.probe import AudioInfo
from pipeline.core.errors import PermanentError
from pipeline.run import hashes as hashes_module
from pipeline.run.hashes import LARGE, FileHashes, hashed_and_probed
from pipeline.sandbox.samples import write_wav


class Watched:
    """A stand-in for the blocking hash-and-probe step that notes how many run at once."""

    def __init__(self, seconds: float = 0.05, fail: set[str] | None = None) -> None:
        self.seconds, self.fail = seconds, fail or set()
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.most_large = self.most = 0
        self.calls: list[str] = []

    def __call__(self, path: str) -> tuple[Located, AudioInfo | PermanentError]:
        with self.lock:
            self.calls.append(path)
            self.running.add(path)
            self.most = max(self.most, len(self.running))
            large = sum(1 for p in self.running if p.startswith("large"))
            self.most_large = max(self.most_large, large)
        time.sleep(self.seconds)
        with self.lock:
            self.running.discard(path)
        if path in self.fail:
            raise OSError("gone")
        return Located(f"sha-{path}", Body(size=1, path=path)), PermanentError("not audio")


async def test_no_more_large_files_are_hashed_at_once_than_allowed() -> None:
    work = Watched()
    hashes = FileHashes(at_once=2, work=work)
    large = [hashes.located(f"large{i}", LARGE, 1) for i in range(6)]
    small = [hashes.located(f"small{i}", LARGE - 1, 1) for i in range(3)]
    await asyncio.gather(*large, *small)
    assert len(work.calls) == 9
    assert work.most_large == 2
    assert work.most > 2  # small files are not held back behind the large ones


async def test_a_file_is_hashed_once_while_unchanged() -> None:
    work = Watched()
    hashes = FileHashes(work=work)
    first, again = await asyncio.gather(
        hashes.located("a.wav", 10, 1), hashes.located("a.wav", 10, 1)
    )
    assert work.calls == ["a.wav"]  # the second row waited for the first answer
    assert first[0].sha256 == again[0].sha256 == "sha-a.wav"
    assert again[0].body == Body(size=10, path="a.wav", mtime_ns=1)
    await hashes.located("a.wav", 10, 2)  # touched since: read again
    assert work.calls == ["a.wav", "a.wav"]


async def test_a_hash_that_failed_fails_its_waiters_and_is_tried_again_by_the_next_row() -> None:
    work = Watched(fail={"gone.wav"})
    hashes = FileHashes(work=work)
    both = await asyncio.gather(
        hashes.located("gone.wav", 10, 1), hashes.located("gone.wav", 10, 1), return_exceptions=True
    )
    assert [type(outcome) for outcome in both] == [OSError, OSError]
    assert work.calls == ["gone.wav"]  # the waiting row was told, not left hanging
    with pytest.raises(OSError):
        await hashes.located("gone.wav", 10, 1)
    assert work.calls == ["gone.wav", "gone.wav"]


async def test_a_file_pushed_out_of_the_cache_while_hashed_still_fails_with_its_own_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hashes_module, "KEPT", 2)
    work = Watched(seconds=0.1, fail={"large-gone"})
    hashes = FileHashes(work=work)
    first = asyncio.ensure_future(hashes.located("large-gone", LARGE, 1))
    waiter = asyncio.ensure_future(hashes.located("large-gone", LARGE, 1))
    await asyncio.sleep(0.02)
    await asyncio.gather(*(hashes.located(f"small{i}", 10, 1) for i in range(3)))  # push it out
    outcomes = await asyncio.wait_for(asyncio.gather(first, waiter, return_exceptions=True), 5)
    assert [type(outcome) for outcome in outcomes] == [OSError, OSError]


def test_the_real_step_hashes_and_probes_the_same_bytes(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 11, seed=1)
    located, audio = hashed_and_probed(str(path))
    assert isinstance(audio, AudioInfo) and audio.format == "wav"
    assert located.body.data == path.read_bytes()
    assert located.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cores_are_the_cpus_this_process_may_run_on() -> None:
    """Under a CPU affinity of one core (taskset, a container's cpuset), one core is counted,
    whatever the machine has."""
    script = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
    script += " from pipeline.run.hashes import cores; print(cores())"
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"
