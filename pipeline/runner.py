"""The worker pool: sources -> prepare workers -> upload workers, with the ledger in between.

    # 1. the producer streams entries from the sources into a bounded queue;
    # 2. prepare workers stat, hash (or fetch) and probe each entry, record it, and hand work that
    #    still needs an upload to a second bounded queue: each entry goes to the next step it needs;
    # 3. upload workers (`concurrency` of them) send each job with retry and backoff, paced by the
    #    shared Throttle, and record the outcome;
    # 4. a stop (signal, time budget, refused key) ends the intake; in-flight uploads get `grace`
    #    seconds to finish and record their result, then are cancelled (they stay pending).

State kept here is only for this run: counters (`Tally`), the contents claimed by a worker in this
run (so the same bytes reached twice are sent once) and why the run stopped. Everything that must
survive a crash is in the ledger the moment it is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipeline.api import UploadResult
from pipeline.config import Settings
from pipeline.errors import PermanentError, RunFatal, TransientError
from pipeline.hashing import sha256_file
from pipeline.ledger import Ledger, SourceFacts, SourceState
from pipeline.probe import AudioInfo, probe
from pipeline.report import Tally
from pipeline.retry import RetryPolicy, retrying
from pipeline.sources import Entry
from pipeline.throttle import Throttle

log = logging.getLogger(__name__)
T = TypeVar("T")


class Uploader(Protocol):
    async def upload(
        self, path: Path, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult: ...


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A source's bytes on local disk: the file itself, or a temporary copy of a download."""

    path: Path
    sha256: str
    size: int
    mtime_ns: int | None = None
    temporary: bool = False

    def discard(self) -> None:
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


class Fetcher(Protocol):
    async def fetch(self, url: str) -> Fetched: ...


@dataclasses.dataclass(frozen=True)
class Job:
    """One upload to do: these bytes, with this purpose, recorded as content `content_id`."""

    content_id: int
    source: str
    purpose: str
    filename: str
    audio: AudioInfo
    data: Fetched


class Stop:
    """Why the run stops taking new work: 'SIGINT', 'SIGTERM', 'deadline' or 'fatal'."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


class _Stopped(Exception):
    """Raised inside a backoff sleep when the run is stopping: the entry stays pending."""


_DONE = object()  # end-of-stream marker in the queues
# Upload tasks per request slot: a task waiting out its backoff holds no slot, so others send.
UPLOAD_TASKS_PER_SLOT = 4


class Runner:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        uploader: Uploader | None,
        entries: AsyncIterator[Entry],
        tally: Tally,
        stop: Stop,
        run_id: int,
        throttle: Throttle | None = None,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.uploader = uploader
        self.entries = entries
        self.tally = tally
        self.stop = stop
        self.run_id = run_id
        self.throttle = throttle or Throttle(settings.rate)
        self.fetcher = fetcher
        self.clock = clock
        self.fatal: RunFatal | None = None
        self.finished = False  # every entry was taken and dealt with
        self._claimed: set[int] = set()  # contents this run has queued for upload
        self._dry_seen: set[tuple[str, str]] = set()  # (sha256, purpose) counted by a dry run
        self._policy = policy_from(settings)
        self._slots = asyncio.Semaphore(settings.concurrency)  # requests in flight

    # --- orchestration ------------------------------------------------------------------------

    async def run(self) -> None:
        prepare_q: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.settings.concurrency * 2)
        upload_q: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.settings.concurrency)
        preparers = max(2, self.settings.concurrency)
        uploaders = [
            asyncio.create_task(self._upload_worker(upload_q))
            for _ in range(
                0 if self.settings.dry_run else UPLOAD_TASKS_PER_SLOT * self.settings.concurrency
            )
        ]
        intake = asyncio.create_task(self._intake(prepare_q, upload_q, preparers, len(uploaders)))
        everything: asyncio.Future[Any] = asyncio.gather(intake, *uploaders)
        stopping: asyncio.Future[Any] = asyncio.create_task(self.stop.event.wait())
        try:
            await asyncio.wait({everything, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if everything.done():
                everything.result()  # surface errors
                self.finished = not self.stop.requested
            else:
                log.info(
                    "stopping (%s): no new work; waiting up to %.0f s for uploads in flight",
                    self.stop.reason,
                    self.settings.grace,
                )
                await self._drain(intake, uploaders)
        finally:
            stopping.cancel()
            for task in [intake, *uploaders]:
                task.cancel()
            await asyncio.gather(intake, *uploaders, return_exceptions=True)
            if everything.done() and not everything.cancelled():
                everything.exception()  # retrieved, so asyncio does not warn about it

    async def _drain(self, intake: asyncio.Task[None], uploaders: list[asyncio.Task[None]]) -> None:
        _, pending = (
            await asyncio.wait([intake, *uploaders], timeout=self.settings.grace)
            if uploaders
            else (set(), {intake})
        )
        for task in pending:
            task.cancel()
        if pending & set(uploaders):
            log.warning(
                "grace period over: %d upload(s) cut off; they stay pending",
                len(pending & set(uploaders)),
            )

    async def _intake(
        self,
        prepare_q: asyncio.Queue[Any],
        upload_q: asyncio.Queue[Any],
        preparers: int,
        uploaders: int,
    ) -> None:
        workers = [
            asyncio.create_task(self._prepare_worker(prepare_q, upload_q)) for _ in range(preparers)
        ]
        try:
            await self._produce(prepare_q)
            for _ in workers:
                await self._put(prepare_q, _DONE)
            await asyncio.gather(*workers)
            for _ in range(uploaders):
                await self._put(upload_q, _DONE)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _until_stop(self, step: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
        """Run `step` until it completes or the run stops; the task if it completed."""
        task = asyncio.create_task(step)
        stopping = asyncio.create_task(self.stop.event.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
        return task if task.done() and not task.cancelled() else None

    async def _get(self, queue: asyncio.Queue[Any]) -> Any:
        """The next item, or _DONE as soon as the run is stopping (idle workers end at once)."""
        if self.stop.requested:
            return _DONE
        got = await self._until_stop(queue.get())
        if got is None:
            return _DONE
        item = got.result()
        if item is _DONE or not self.stop.requested:
            return item
        if isinstance(item, Job):
            item.data.discard()
        return _DONE

    async def _put(self, queue: asyncio.Queue[Any], item: object) -> bool:
        """Put unless the run is stopping; False if the item was not queued."""
        if item is _DONE and self.stop.requested:
            return False
        return await self._until_stop(queue.put(item)) is not None

    # --- step 1: produce ----------------------------------------------------------------------

    async def _produce(self, prepare_q: asyncio.Queue[Any]) -> None:
        async for entry in self.entries:
            if self.stop.requested:
                return
            self.tally.seen += 1
            if not await self._put(prepare_q, entry):
                return
        self.tally.sources_done = True

    # --- step 2: prepare ----------------------------------------------------------------------

    async def _prepare_worker(
        self, prepare_q: asyncio.Queue[Any], upload_q: asyncio.Queue[Any]
    ) -> None:
        while True:
            entry = await self._get(prepare_q)
            if entry is _DONE:
                return
            job = await self._prepare(entry)
            if job is not None and not await self._put(upload_q, job):
                job.data.discard()

    async def _prepare(self, entry: Entry) -> Job | None:
        """Decide what `entry` still needs; return the upload job if it needs one."""
        state = await self.ledger.find_source(entry.source, entry.purpose)
        if entry.error is not None:
            if state is not None and state.error == entry.error and self._skip(entry, state):
                return None  # the same bad row as last time: reported then, not again
            await self._fail_source(entry, _facts(entry), entry.error)
            return None
        data: Fetched | None = None
        try:
            data = await self._locate(entry, state)
            if data is None:
                return None
            audio = await asyncio.to_thread(probe, data.path)
        except PermanentError as exc:
            # Size, mtime and hash are kept, so an unchanged bad file is skipped next time.
            await self._fail_source(entry, _facts(entry, data), exc.reason)
            if data is not None:
                data.discard()
            return None
        except TransientError as exc:
            await self._leave_source(entry, exc.reason)
            return None
        try:
            return await self._claim(entry, data, audio)
        except BaseException:
            data.discard()
            raise

    async def _locate(self, entry: Entry, state: SourceState | None) -> Fetched | None:
        """The entry's bytes and hash, or None when it is to be skipped. A local file whose
        size and mtime are unchanged since it was hashed is not hashed again."""
        if entry.url is not None:
            if state is not None and self._skip(entry, state):
                return None
            if self.fetcher is None:
                raise PermanentError("URL sources need a fetcher")
            return await self.fetcher.fetch(entry.url)
        assert entry.path is not None
        try:
            info = await asyncio.to_thread(os.stat, entry.path)
        except OSError as exc:
            reason = f"cannot read file: {exc.strerror or exc}"
            if state is not None and state.error == reason and self._skip(entry, state):
                return None  # still missing, as last time: reported then
            raise PermanentError(reason) from exc
        if (
            state is not None
            and state.sha256 is not None
            and (state.size == info.st_size and state.mtime_ns == info.st_mtime_ns)
        ):
            if self._skip(entry, state):
                return None
            return Fetched(entry.path, state.sha256, info.st_size, mtime_ns=info.st_mtime_ns)
        # The stat taken before hashing is recorded: a file changed meanwhile is hashed again.
        digest, size = await asyncio.to_thread(sha256_file, entry.path)
        return Fetched(entry.path, digest, size, mtime_ns=info.st_mtime_ns)

    def _skip(self, entry: Entry, state: SourceState) -> bool:
        status = state.effective_status()
        if status == "done":
            self.tally.skipped_done += 1
            log.debug("skip %s (%s): done earlier", entry.source, entry.purpose)
            return True
        if state.failed_for_good() and not self.settings.retry_failed:
            self.tally.skipped_failed += 1
            log.debug("skip %s (%s): failed earlier: %s", entry.source, entry.purpose, state.error)
            return True
        return False

    async def _claim(self, entry: Entry, data: Fetched, audio: AudioInfo) -> Job | None:
        """Record the source against its content; return a job if this run must upload it."""
        facts = _facts(entry, data)
        if self.settings.dry_run:
            done = await self.ledger.content_status_of(data.sha256, entry.purpose) == "done"
            self._count_dry(entry, data, done=done)
            return None
        content_id, status, retryable = await self.ledger.content_for(
            data.sha256, entry.purpose, data.size
        )
        await self.ledger.record_source(facts, run_id=self.run_id, content_id=content_id)
        again = retryable or self.settings.retry_failed
        if status == "failed" and again and content_id not in self._claimed:
            await self.ledger.reset_content(content_id)
            status = "pending"
        if status != "pending" or content_id in self._claimed:
            self._count_linked(entry, status, content_id)
            data.discard()
            return None
        self._claimed.add(content_id)
        return Job(content_id, entry.source, entry.purpose, entry.filename, audio, data)

    def _count_linked(self, entry: Entry, status: str, content_id: int) -> None:
        if status == "done" or content_id in self._claimed:
            self.tally.deduplicated += 1
            log.info(
                "same bytes as an upload already %s: %s (%s)",
                "done" if status == "done" else "in this run",
                entry.source,
                entry.purpose,
            )
        else:
            self.tally.skipped_failed += 1

    def _count_dry(self, entry: Entry, data: Fetched, *, done: bool) -> None:
        key = (data.sha256, entry.purpose)
        if done or key in self._dry_seen:
            self.tally.deduplicated += 1
        else:
            self._dry_seen.add(key)
            self.tally.would_upload[entry.purpose] += 1
            self.tally.would_upload_bytes[entry.purpose] += data.size
        data.discard()

    async def _fail_source(self, entry: Entry, facts: SourceFacts, reason: str) -> None:
        self.tally.failed[_reason_key(reason)] += 1
        log.warning("failed %s: %s", _where(entry), reason)
        if not self.settings.dry_run:
            await self.ledger.record_source(
                facts, run_id=self.run_id, status="failed", error=reason
            )

    async def _leave_source(self, entry: Entry, reason: str) -> None:
        self.tally.left[_reason_key(reason)] += 1
        log.warning("left for the next run %s: %s", _where(entry), reason)
        if not self.settings.dry_run:
            await self.ledger.record_source(
                _facts(entry), run_id=self.run_id, status="failed", error=reason, retryable=True
            )

    # --- step 3: upload -----------------------------------------------------------------------

    async def _upload_worker(self, upload_q: asyncio.Queue[Any]) -> None:
        while True:
            job = await self._get(upload_q)
            if job is _DONE:
                return
            try:
                await self._upload(job)
            finally:
                job.data.discard()

    async def _upload(self, job: Job) -> None:
        started = self.clock()
        attempt = 0
        try:
            async for try_ in retrying(self._policy, sleep=self._backoff_sleep):
                with try_:
                    attempt += 1
                    if attempt > 1:
                        self.tally.retries += 1
                    result = await self._attempt(job, attempt)
        except PermanentError as exc:
            await self.ledger.mark_failed(job.content_id, exc.reason, trace_id=None)
            self.tally.failed[_reason_key(exc.reason)] += 1
            log.warning(
                "failed %s (%s) after %d attempt(s): %s",
                job.source,
                job.purpose,
                attempt,
                exc.reason,
            )
            return
        except TransientError as exc:
            await self.ledger.mark_retryable(job.content_id, exc.reason)
            self.tally.left[_reason_key(exc.reason)] += 1
            log.warning(
                "left for the next run %s (%s) after %d attempt(s): %s",
                job.source,
                job.purpose,
                attempt,
                exc.reason,
            )
            return
        except RunFatal as exc:
            self.fatal = self.fatal or exc
            self.stop.request("fatal")
            return
        except _Stopped:
            return
        self.tally.uploaded += 1
        self.tally.uploaded_bytes += job.data.size
        log.info(
            "done %s (%s) voice_id=%s instrumental_id=%s attempt %d in %.2f s",
            job.source,
            job.purpose,
            result.voice_id,
            result.instrumental_id,
            attempt,
            self.clock() - started,
        )

    async def _attempt(self, job: Job, attempt: int) -> UploadResult:
        """One request, holding one of the `concurrency` slots from the moment it is counted
        until its ids are recorded (so a crash repeats at most `concurrency` uploads), but not
        while it waits out a backoff."""
        assert self.uploader is not None
        async with self._slots:
            if self.stop.requested:
                raise _Stopped()  # not on the wire yet: it stays pending for the next run
            await self.ledger.mark_attempt(job.content_id)
            await self.throttle.acquire()  # last, so the request leaves right on its slot
            log.debug("upload %s (%s) attempt %d", job.source, job.purpose, attempt)
            self.tally.in_flight += 1
            try:
                result = await self.uploader.upload(
                    job.data.path,
                    purpose=job.purpose,
                    filename=job.filename,
                    content_type=job.audio.content_type,
                )
            except TransientError as exc:
                if exc.throttled:
                    self.throttle.on_throttled(exc.retry_after)
                log.info("attempt %d of %s (%s) failed, will retry: %s",
                         attempt, job.source, job.purpose, exc.reason)  # fmt: skip
                raise
            finally:
                self.tally.in_flight -= 1
            await self.ledger.mark_done(
                job.content_id,
                voice_id=result.voice_id,
                instrumental_id=result.instrumental_id,
                trace_id=result.trace_id,
            )
        self.throttle.on_success()
        return result

    async def _backoff_sleep(self, seconds: float) -> None:
        if self.stop.requested:
            raise _Stopped()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.event.wait(), timeout=seconds)
            raise _Stopped()


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base=settings.backoff_base,
        cap=settings.backoff_max,
        max_total_wait=settings.max_backoff,
    )


def _facts(entry: Entry, data: Fetched | None = None) -> SourceFacts:
    return SourceFacts(
        source=entry.source,
        purpose=entry.purpose,
        kind=entry.kind,
        written=entry.written,
        path=str(entry.path) if entry.path is not None else None,
        filename=entry.filename,
        size=data.size if data is not None else None,
        mtime_ns=data.mtime_ns if data is not None else None,
        sha256=data.sha256 if data is not None else None,
        line=entry.line,
        external_id=entry.external_id,
        extra=entry.extra,
    )


def _where(entry: Entry) -> str:
    return f"{entry.source} line {entry.line}" if entry.line is not None else entry.source


def _reason_key(reason: str) -> str:
    """Group reasons in the summary: the part before any per-file detail."""
    return reason.split(" (", 1)[0][:120]
