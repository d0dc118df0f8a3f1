"""Step 3 of a run: send one job, with its retries, holding a request slot only while it counts.

    # 3a. wait while the service is down (`Breaker`: one probe at a time goes out), then for a
    #     request slot and the pool's pace (`Throttle`: a window of requests in flight and a
    #     pace, both learnt from the service's answers);
    # 3b. count the attempt in the ledger, send, and record the answer: `done` with the ids is
    #     committed before the slot is given back, so a crash repeats at most the uploads that
    #     hold a slot (at most `--concurrency`);
    # 3c. on a transient error, give the slot back and wait out the backoff (the service's
    #     Retry-After wins), then go to 3a; past `--max-attempts` (or `max_backoff` of waiting)
    #     the content is left for the next run. A request that failed because the service is
    #     down (the breaker opened, or it was the breaker's probe) does not use up an attempt.

A permanent error fails the content at once; a refused key stops the whole run (`fatal`); a
service down for longer than `--max-outage` stops it too (`outage`); a file that changed since
it was hashed is left for the next run; a ledger that cannot be written stops the run (the writer
asks for that itself).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from pipeline.breaker import Breaker, BreakerState, ServiceDown
from pipeline.errors import (
    EntryError,
    LedgerWriteError,
    PermanentError,
    RunFatal,
    SourceChanged,
    TransientError,
)
from pipeline.ledger.writer import Writer
from pipeline.model import Job, Stop, Stopped, Uploader, UploadResult
from pipeline.report import Tally, reason_key
from pipeline.retry import RetryPolicy, next_wait
from pipeline.states import StopReason
from pipeline.throttle import Signal, Throttle, signal_of

log = logging.getLogger(__name__)


class _GaveUp(Exception):
    """The retry policy gave up on a job: its last error, after this many attempts."""

    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


class Sender:
    def __init__(
        self,
        *,
        uploader: Uploader,
        writer: Writer,
        throttle: Throttle,
        breaker: Breaker,
        policy: RetryPolicy,
        stop: Stop,
        tally: Tally,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uploader = uploader
        self.writer = writer
        self.throttle = throttle
        self.breaker = breaker
        self.policy = policy
        self.stop = stop
        self.tally = tally
        self.clock = clock
        self.fatal: RunFatal | None = None
        self.outage: ServiceDown | None = None

    async def send(self, job: Job) -> None:
        """Upload `job` and record what came of it. Never raises but for cancellation."""
        started, attempts = self.clock(), 0
        try:
            result, attempts = await self._attempts(job)
        except _GaveUp as gave_up:
            await self._record_failure(job, gave_up.error, gave_up.attempts)
            return
        except (Stopped, LedgerWriteError):
            return
        except ServiceDown as exc:
            self.outage = self.outage or exc
            self.stop.request(StopReason.OUTAGE)
            return
        except Exception as exc:  # noqa: BLE001 (every outcome is recorded, none stops the pool)
            await self._record_failure(job, exc, attempts)
            return
        self.tally.uploaded += 1
        self.tally.uploaded_bytes += job.data.size
        log.info(
            "done %s (%s) voice_id=%s instrumental_id=%s attempt %d in %.2f s",
            job.source,
            job.purpose,
            result.voice_id,
            result.instrumental_id,
            attempts,
            self.clock() - started,
        )

    async def _attempts(self, job: Job) -> tuple[UploadResult, int]:
        """Attempts until one succeeds (the result, and how many it took) or the policy gives
        up (`_GaveUp`); between them, the backoff (the service's Retry-After wins)."""
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            self.tally.retries += attempt > 1
            try:
                return await self._attempt(job), attempt
            except EntryError as exc:
                seconds = next_wait(self.policy, attempt, exc, waited)
                if seconds is None or not isinstance(exc, TransientError):
                    raise _GaveUp(exc, attempt) from exc
                self._announce(job, attempt, exc, seconds)
                waited += seconds
                await self._backoff(seconds)

    async def _attempt(self, job: Job) -> UploadResult:
        """One attempt, as the retry policy counts them: requests lost to a service that is
        down are sent again (after the breaker lets them) without counting."""
        while True:
            probe = (
                False  # the usual case, without a wait to race against the stop
                if self.breaker.state is BreakerState.CLOSED
                else await self.stop.first(self.breaker.admit())
            )
            try:
                return await self._request(job)
            except TransientError as exc:
                if not (exc.unreachable and (probe or self.breaker.state != BreakerState.CLOSED)):
                    raise

    async def _request(self, job: Job) -> UploadResult:
        """Hold a slot for one request: from before it is counted until its outcome is
        recorded (`done` committed), so a crash repeats at most the requests holding slots."""
        await self.throttle.acquire()  # in this task: the throttle knows its requests by task
        signal: Signal | None = None
        try:
            if self.stop.requested:
                raise Stopped()  # not on the wire yet: it stays pending for the next run
            self.writer.attempt(job.content_id)
            result = await self._send(job)
            signal = Signal.OK
            self.breaker.record(signal)
            await self.writer.done(job.content_id, result)
            return result
        except SourceChanged:
            raise  # aborted by us before the body was complete: no answer to learn from
        except EntryError as exc:
            signal = signal_of(exc)
            self.breaker.record(signal)
            raise
        except RunFatal:
            signal = Signal.OK  # the service answered
            raise
        finally:
            if signal is None:
                self.throttle.abandon()  # cut off (a stop, our own abort): nothing learnt
            else:
                self.throttle.release(signal)

    async def _send(self, job: Job) -> UploadResult:
        self.tally.sending[job.content_id] = job.source
        try:
            return await self.uploader.upload(
                job.data.body,
                purpose=job.purpose,
                filename=job.filename,
                content_type=job.audio.content_type,
            )
        finally:
            self.tally.sending.pop(job.content_id, None)

    async def _record_failure(self, job: Job, exc: Exception, attempts: int) -> None:
        where = f"{job.source} ({job.purpose})"
        if isinstance(exc, RunFatal):
            self.fatal = self.fatal or exc
            self.stop.request(StopReason.FATAL)
            return
        if isinstance(exc, SourceChanged):
            self.writer.leave_source(job.source, job.purpose, exc.reason)
            self.tally.left[reason_key(exc.reason)] += 1
            log.warning("left for the next run %s: %s", where, exc.reason)
            return
        final = isinstance(exc, PermanentError)
        if not isinstance(exc, TransientError | PermanentError):
            log.error("internal error on %s: %r", where, exc, exc_info=log.isEnabledFor(10))
            exc = TransientError(f"internal error: {type(exc).__name__}: {exc}")
        assert isinstance(exc, TransientError | PermanentError)
        with contextlib.suppress(LedgerWriteError):
            await self.writer.failed(
                job.content_id, exc.reason, trace_id=exc.trace_id, retryable=not final
            )
        (self.tally.failed if final else self.tally.left)[reason_key(exc.reason)] += 1
        outcome = "failed" if final else "left for the next run"
        log.warning("%s %s after %d attempt(s): %s", outcome, where, attempts, exc.reason)

    @staticmethod
    def _announce(job: Job, attempt: int, error: TransientError, seconds: float) -> None:
        log.info(
            "attempt %d of %s (%s) failed: %s; retrying in %.1f s",
            attempt,
            job.source,
            job.purpose,
            error.reason,
            seconds,
        )

    async def _backoff(self, seconds: float) -> None:
        if self.stop.requested or await self.stop.nap(seconds):
            raise Stopped()  # the entry stays pending for the next run
