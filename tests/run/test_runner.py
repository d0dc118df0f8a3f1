"""The worker pool with a real ledger file and an in-process uploader that fails on demand."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipeline.content.body import Body
from pipeline.core.errors import PermanentError, RunFatal, TransientError
from pipeline.core.records import UploadResult
from pipeline.core.states import StopReason
from pipeline.core.stop import Stop
from pipeline.flow.backoff import RetryPolicy
from pipeline.flow.breaker import Breaker
from pipeline.flow.signals import Signal
from pipeline.flow.throttle import Throttle
from pipeline.ledger import export as ledger_export
from pipeline.ledger import open_ledger
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.writer import Writer
from pipeline.run import hashes as hashes_mod
from pipeline.run.plan import Policy
from pipeline.run.prepare import Preparer
from pipeline.run.runner import Runner
from pipeline.run.tally import Tally
from pipeline.run.upload import Sender
from pipeline.sandbox.samples import write_wav
from pipeline.sources import CrawlStats
from pipeline.sources.folder import walk_folder


class ScriptedUploader:
    """Answers each upload from a script of errors keyed by file name, then succeeds."""

    def __init__(self, script: dict[str, list[Exception]] | None = None) -> None:
        self.script = script or {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.order: list[str] = []  # every call's file name, in the order they came

    async def upload(
        self, body: Body, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult:
        self.calls[filename] += 1
        self.order.append(filename)
        await asyncio.sleep(0)
        errors = self.script.get(filename, [])
        if errors:
            raise errors.pop(0)
        return UploadResult(voice_id=f"v-{filename}", instrumental_id=f"i-{filename}", trace_id="t")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[RunLedger]:
    ledger = await open_ledger(str(tmp_path / "l.db"))
    yield ledger
    await ledger.close()


class Outcome:
    def __init__(self, tally: Tally, stop: Stop, sender: Sender) -> None:
        self.tally, self.stop, self.sender = tally, stop, sender


async def run(
    root: Path,
    ledger: RunLedger,
    uploader: ScriptedUploader,
    *,
    max_attempts: int = 6,
    stop: Stop | None = None,
) -> Outcome:
    tally, stop = Tally(), stop or Stop()
    run_id = await ledger.start_run(pid=1, host="h", command="test")
    writer = Writer.for_ledger(ledger, run_id, patience=600.0)
    async with writer.running():
        sender = Sender(
            uploader=uploader,
            writer=writer,
            throttle=Throttle(rate=None, max_in_flight=3),
            breaker=Breaker(max_outage=30),
            policy=RetryPolicy(max_attempts=max_attempts, base=0.001, cap=0.001),
            stop=stop,
            tally=tally,
        )
        preparer = Preparer(
            ledger=ledger, writer=writer, fetcher=None, tally=tally, policy=Policy(), patience=60
        )
        runner = Runner(
            batches=walk_folder(root, purpose=None, stats=CrawlStats()),
            preparer=preparer,
            sender=sender,
            stop=stop,
            concurrency=3,
            grace=5,
        )
        await runner.run()
    return Outcome(tally, stop, sender)


async def statuses(ledger: RunLedger) -> dict[str, str]:
    return {Path(r["source"]).name: r["status"] async for r in ledger_export.records(ledger)}


async def test_unchanged_files_are_not_hashed_again(
    tmp_path: Path, ledger: RunLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write_wav(tmp_path / "song" / f"{i}.wav", 11, seed=i)
    hashed: list[object] = []
    real = hashes_mod.read_and_hash

    def counting(path: object) -> object:
        hashed.append(path)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(hashes_mod, "read_and_hash", counting)
    uploader = ScriptedUploader({"1.wav": [TransientError("x")] * 2})
    await run(tmp_path, ledger, uploader, max_attempts=2)
    assert len(hashed) == 3
    await run(tmp_path, ledger, uploader)  # 1.wav is retried from its recorded hash
    assert len(hashed) == 3
    assert (await statuses(ledger))["1.wav"] == "done"


async def test_same_bytes_in_one_run_are_sent_once(tmp_path: Path, ledger: RunLedger) -> None:
    first = write_wav(tmp_path / "song" / "a.wav", 11)
    for name in ("b.wav", "c.wav"):
        (tmp_path / "song" / name).write_bytes(first.read_bytes())
    uploader = ScriptedUploader()
    outcome = await run(tmp_path, ledger, uploader)
    assert sum(uploader.calls.values()) == 1
    assert outcome.tally.deduplicated == 2
    assert set((await statuses(ledger)).values()) == {"done"}


async def test_transient_retried_permanent_failed_with_attempts_counted(
    tmp_path: Path, ledger: RunLedger
) -> None:
    write_wav(tmp_path / "song" / "flaky.wav", 11, seed=1)
    write_wav(tmp_path / "song" / "bad.wav", 11, seed=2)
    uploader = ScriptedUploader(
        {
            "flaky.wav": [TransientError("503"), TransientError("503")],
            "bad.wav": [PermanentError("base_resp 2013: invalid params", trace_id="tr-9")],
        }
    )
    outcome = await run(tmp_path, ledger, uploader)
    rows = {Path(r["source"]).name: r async for r in ledger_export.records(ledger)}
    assert (rows["flaky.wav"]["status"], rows["flaky.wav"]["attempts"]) == ("done", 3)
    assert (rows["bad.wav"]["status"], rows["bad.wav"]["attempts"]) == ("failed", 1)
    assert rows["bad.wav"]["error"] == "base_resp 2013: invalid params"
    assert rows["bad.wav"]["trace_id"] == "tr-9"
    assert outcome.tally.retries == 2 and outcome.tally.failed_total == 1


async def test_jobs_waiting_out_a_backoff_do_not_hold_the_upload_tasks(
    tmp_path: Path, ledger: RunLedger
) -> None:
    # Concurrency 3 means 12 upload tasks. 14 files each told to wait 0.5 s would, waiting in
    # those tasks, hold every task and every other file until their waits were over.
    slow = [f"a{i:02d}.wav" for i in range(14)]
    fast = [f"b{i:02d}.wav" for i in range(10)]
    for i, name in enumerate(slow + fast):
        write_wav(tmp_path / "song" / name, 11, seed=i)
    uploader = ScriptedUploader({name: [TransientError("429", retry_after=0.5)] for name in slow})
    await run(tmp_path, ledger, uploader)
    second_tries = [i for i, name in enumerate(uploader.order) if name in slow][len(slow) :]
    assert max(uploader.order.index(name) for name in fast) < min(second_tries)
    assert uploader.calls == {**dict.fromkeys(slow, 2), **dict.fromkeys(fast, 1)}
    assert set((await statuses(ledger)).values()) == {"done"}


async def test_a_stop_drops_parked_jobs_at_once_and_leaves_them_pending(
    tmp_path: Path, ledger: RunLedger
) -> None:
    for i in range(4):
        write_wav(tmp_path / "song" / f"{i}.wav", 11, seed=i)
    uploader = ScriptedUploader({"0.wav": [TransientError("429", retry_after=60.0)]})
    stop = Stop()

    async def stop_when_the_rest_is_done() -> None:
        while sum(uploader.calls.values()) < 4:
            await asyncio.sleep(0.01)
        stop.request(StopReason.SIGTERM)

    stopper = asyncio.create_task(stop_when_the_rest_is_done())
    await asyncio.wait_for(run(tmp_path, ledger, uploader, stop=stop), timeout=10)
    await stopper
    assert uploader.calls["0.wav"] == 1
    assert (await statuses(ledger)) == {
        "0.wav": "pending",
        "1.wav": "done",
        "2.wav": "done",
        "3.wav": "done",
    }


async def test_only_attempts_that_will_be_retried_say_so(
    tmp_path: Path, ledger: RunLedger, caplog: pytest.LogCaptureFixture
) -> None:
    write_wav(tmp_path / "song" / "flaky.wav", 11)
    uploader = ScriptedUploader({"flaky.wav": [TransientError("HTTP 503")] * 5})
    with caplog.at_level("INFO"):
        await run(tmp_path, ledger, uploader, max_attempts=3)
    said = [r.getMessage() for r in caplog.records if "flaky.wav" in r.getMessage()]
    assert sum("retrying in" in line for line in said) == 2  # after attempts 1 and 2
    assert any("left for the next run" in m and "after 3 attempt(s)" in m for m in said)
    assert not any("attempt 3" in line and "retrying" in line for line in said)


async def test_an_unexpected_error_is_recorded_and_the_run_goes_on(
    tmp_path: Path, ledger: RunLedger
) -> None:
    write_wav(tmp_path / "song" / "odd.wav", 11, seed=1)
    write_wav(tmp_path / "song" / "fine.wav", 11, seed=2)
    uploader = ScriptedUploader({"odd.wav": [ValueError("a bug somewhere")] * 6})
    outcome = await run(tmp_path, ledger, uploader, max_attempts=2)
    rows = {Path(r["source"]).name: r async for r in ledger_export.records(ledger)}
    assert rows["fine.wav"]["status"] == "done"
    assert rows["odd.wav"]["retryable"] and "internal error: ValueError" in rows["odd.wav"]["error"]
    assert outcome.tally.left_total == 1


async def test_fatal_error_stops_the_run_and_marks_nothing_failed(
    tmp_path: Path, ledger: RunLedger
) -> None:
    for i in range(12):
        write_wav(tmp_path / "voice" / f"{i:02d}.wav", 11, seed=i)
    uploader = ScriptedUploader({f"{i:02d}.wav": [RunFatal("key refused")] for i in range(12)})
    outcome = await run(tmp_path, ledger, uploader)
    assert outcome.sender.fatal is not None and outcome.stop.reason == StopReason.FATAL
    assert sum(uploader.calls.values()) <= 3  # the ones in flight, not every file
    assert set((await statuses(ledger)).values()) == {"pending"}


async def test_a_refused_key_tells_the_breaker_the_service_answered(
    tmp_path: Path, ledger: RunLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[Signal] = []
    record = Breaker.record

    def spy(self: Breaker, signal: Signal, *, unreached: str | None = None) -> None:
        told.append(signal)
        record(self, signal, unreached=unreached)

    monkeypatch.setattr(Breaker, "record", spy)
    write_wav(tmp_path / "voice" / "a.wav", 11)
    await run(tmp_path, ledger, ScriptedUploader({"a.wav": [RunFatal("key refused")]}))
    assert told == [Signal.OK]  # a half-open breaker's probe gets its verdict


async def test_a_file_named_on_many_rows_is_hashed_once_per_run(
    tmp_path: Path, ledger: RunLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.core.entry import Entry
    from pipeline.run.plan import Step
    from pipeline.run.prepare import Triaged

    path = write_wav(tmp_path / "song" / "same.wav", 11)
    reads: list[object] = []
    real = hashes_mod.read_and_hash

    def counting(where: object) -> object:
        reads.append(where)
        return real(where)  # type: ignore[arg-type]

    monkeypatch.setattr(hashes_mod, "read_and_hash", counting)
    info = path.stat()
    writer = Writer.for_ledger(ledger, 1, patience=600.0)
    async with writer.running():
        preparer = Preparer(
            ledger=ledger, writer=writer, fetcher=None, tally=Tally(), policy=Policy(), patience=60
        )
        rows = [
            Triaged(
                Entry(
                    source=f"{path} [external_id=row{i}]",
                    purpose="song",
                    filename="same.wav",
                    path=str(path),
                    size=info.st_size,
                    mtime_ns=info.st_mtime_ns,
                ),
                None,
                Step.HASH,
            )
            for i in range(20)
        ]
        jobs = await asyncio.gather(*(preparer.prepare(work) for work in rows))
    assert len(reads) == 1  # read once, though 20 rows name it and are prepared at once
    assert sum(job is not None for job in jobs) == 1  # and uploaded once
    assert preparer.tally.deduplicated == 19
