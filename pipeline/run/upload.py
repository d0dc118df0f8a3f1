"""Step 3 of a run: send one job, with its retries, holding a request slot only while it counts.

    # 3a. wait while the service is down (`Breaker`: one probe at a time goes out), then for a
    #     request slot and the pool's pace (`Throttle`: a window of requests in flight and a
    #     pace, both learnt from the service's answers);
    # 3b. count the attempt in the ledger, send, and record the answer: `done` with the ids is
    #     committed before the slot is given back, so a crash repeats at most the uploads that
    #     hold a slot (at most `--concurrency`);
    # 3c. on a transient error, give the slot back and say how long to back off (the service's
    #     Retry-After wins): the runner parks the job outside its upload tasks until then, and
    #     it goes to 3a again; past `--max-attempts` (or `max_backoff` of waiting) the content
    #     is left for the next run. A request that failed because the service is down (the
    #     breaker opened, or it was the breaker's probe) does not use up an attempt.

A permanent error fails the content at once; a refused key stops the whole run (`fatal`); a
service down for longer than `--max-outage` stops it too (`outage`), and so does one that no
request has reached for `--max-unreached` (a wrong URL: `outage` is then a `NeverReached`); a
file that changed since it was hashed is left for the next run; a ledger that cannot be written
stops the run (the writer asks for that itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from pipeline.core.errors import (
    EntryError,
    LedgerWriteError,
    PermanentError,
    RunFatal,
    ServiceDown,
    SourceChanged,
    Stopped,
    TransientError,
)
from pipeline.core.records import UploadResult
from pipeline.core.states import StopReason
from pipeline.core.stop import Stop
from pipeline.flow.backoff import RetryPolicy, next_wait
from pipeline.flow.breaker import Breaker, BreakerState
from pipeline.flow.signals import Signal, signal_of
from pipeline.flow.throttle import Throttle
from pipeline.run.model import Job, Recorder, Uploader
from pipeline.run.tally import Tally, reason_key

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class Upload:
    """One job on its way: its attempts so far and the seconds it has waited between them."""

    job: Job
    started: float
    attempts: int = 0
    waited: float = 0.0


class Sender:
    def __init__(
        self,
        *,
        uploader: Uploader,
        writer: Recorder,
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

    @property
    def never_reached(self) -> str | None:
        """Why no request of this run reached the service, when none did (and one was sent)."""
        return self.breaker.never_reached

    def begin(self, job: Job) -> Upload:
        return Upload(job, self.clock())

    async def attempt(self, upload: Upload) -> float | None:
        """One attempt of `upload`: the seconds to wait before the next one, or None once the
        job is dealt with (its outcome recorded, or cut off by a stop and left pending). Never
        raises but for cancellation."""
        job = upload.job
        upload.attempts += 1
        self.tally.retries += upload.attempts > 1
        try:
            result = await self._attempt(job)
        except (Stopped, LedgerWriteError):
            return None
        except ServiceDown as exc:
            self.outage = self.outage or exc
            self.stop.request(StopReason.OUTAGE)
            return None
        except TransientError as exc:
            seconds = next_wait(self.policy, upload.attempts, exc, upload.waited)
            if seconds is None:
                await self._record_failure(job, exc, upload.attempts)
                return None
            self._announce(job, upload.attempts, exc, seconds)
            upload.waited += seconds
            return seconds
        except Exception as exc:  # noqa: BLE001 (every outcome is recorded, none stops the pool)
            await self._record_failure(job, exc, upload.attempts)
            return None
        self.tally.uploaded += 1
        self.tally.uploaded_bytes += job.data.sent.size
        if job.data.converted is not None:
            self.tally.converted[job.data.converted.converted_from] += 1
        converted = job.data.converted
        log.info(
            "done %s (%s)%s voice_id=%s instrumental_id=%s attempt %d in %.2f s",
            job.source,
            job.purpose,
            f" sent as WAV decoded from {converted.converted_from}" if converted else "",
            result.voice_id,
            result.instrumental_id,
            upload.attempts,
            self.clock() - upload.started,
        )
        return None

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
        ticket = await self.throttle.acquire()
        signal: Signal | None = None
        try:
            if self.stop.requested:
                raise Stopped()  # not on the wire yet: it stays pending for the next run
            self.writer.attempt(job.content_id)
            try:
                result = await self._send(job)
            except SourceChanged:
                raise  # aborted by us before the body was complete: no answer to learn from
            except (EntryError, RunFatal) as exc:  # a refused key is an answer too
                signal = self._answered(exc)
                raise
            signal = self._answered(None)
            converted = job.data.converted
            sent = converted.sha256 if converted is not None else None
            await self.writer.done(job.content_id, result, sent_sha256=sent)
            return result
        finally:
            if signal is None:
                self.throttle.abandon(ticket)  # cut off (a stop, our own abort): nothing learnt
            else:
                self.throttle.release(ticket, signal)

    def _answered(self, error: Exception | None) -> Signal:
        """What an answer (None: a success) says of the service, told to the breaker now; the
        throttle learns it once the outcome is recorded and the slot is given back."""
        signal = signal_of(error)
        unreached = error.connect_failed if isinstance(error, TransientError) else None
        self.breaker.record(signal, unreached=unreached)
        return signal

    async def _send(self, job: Job) -> UploadResult:
        self.tally.sending[job.content_id] = job.source
        try:
            return await self.uploader.upload(
                job.data.sent,
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


class DrySender:
    """The upload step of a dry run: each job that a real run would send is counted, with the
    bytes it would send (a decoded WAV's, for a source converted), and nothing goes out."""

    fatal: RunFatal | None = None
    outage: ServiceDown | None = None
    never_reached: str | None = None

    def __init__(self, tally: Tally, clock: Callable[[], float] = time.monotonic) -> None:
        self.tally = tally
        self.clock = clock

    def begin(self, job: Job) -> Upload:
        return Upload(job, self.clock())

    async def attempt(self, upload: Upload) -> float | None:
        job = upload.job
        self.tally.would_upload[job.purpose] += 1
        self.tally.would_upload_bytes[job.purpose] += job.data.sent.size
        if job.data.converted is not None:
            self.tally.converted[job.data.converted.converted_from] += 1
        return None
