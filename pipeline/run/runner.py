"""The worker pool: batches of entries -> triage -> prepare workers -> upload workers.

    # 1. the intake reads batches from the sources and triages each (`Preparer.triage`: one
    #    ledger lookup per batch); what needs I/O goes to a bounded queue;
    # 2. prepare workers hash (or fetch) and probe, and link each entry to its content; a content
    #    that needs sending goes to a second bounded queue (`Preparer.prepare`);
    # 3. upload tasks send each job (`Sender.attempt`); a job that must back off before its
    #    next attempt is parked outside the tasks (`Parking`) and taken again, before new jobs,
    #    once its wait is over; a task waiting for a request slot holds none, so there are
    #    several tasks per slot;
    # 4. a stop (signal, time budget, refused key, dead service, ledger failure) ends the intake;
    #    idle workers end at once, parked jobs are dropped; uploads in flight get `grace`
    #    seconds to finish and be recorded, then are cancelled (all stay pending for the next
    #    run).

This module holds only the queues and that lifecycle; what each step does is in `prepare.py`
and `upload.py`, and what is recorded is in the ledger the moment it is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from pipeline.core.entry import Entry
from pipeline.core.errors import Stopped
from pipeline.core.stop import Stop
from pipeline.flow.parking import Parking
from pipeline.run.model import Job
from pipeline.run.prepare import Preparer, Triaged
from pipeline.run.upload import Upload

log = logging.getLogger(__name__)

_DONE = object()  # end-of-stream marker in the queues
# Upload tasks per request slot: tasks waiting for a slot keep the next requests ready to go.
UPLOAD_TASKS_PER_SLOT = 4
# Jobs parked in a backoff per request slot. Little's law, against make bench's noisy sandbox:
# at 700 attempts a second, 8% answered 429 with Retry-After: 1 and 5% 1002 (a 0.5 s wait on
# average; the other faults' 25 ms hardly count), about 75 jobs wait at once, which is 5 per
# slot at --concurrency 16.
PARKED_PER_SLOT = 8


class Sending(Protocol):
    """The upload step as the runner drives it (`upload.Sender`, or a dry run's `DrySender`)."""

    def begin(self, job: Job) -> Upload: ...

    async def attempt(self, upload: Upload) -> float | None:
        """One attempt: the seconds to wait before the next one, or None once it is dealt with."""
        ...


class Runner:
    def __init__(
        self,
        *,
        batches: AsyncIterator[Sequence[Entry]],
        preparer: Preparer,
        sender: Sending,
        stop: Stop,
        concurrency: int,
        grace: float,
        on_sources_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.batches = batches
        self.preparer = preparer
        self.sender = sender
        self.stop = stop
        self.concurrency = concurrency
        self.grace = grace
        self.on_sources_done = on_sources_done
        self.finished = False  # every entry was taken and dealt with
        self._unfinished = 0  # jobs handed to the upload tasks and not yet dealt with
        self._idle = asyncio.Event()  # set while that count is 0
        self._idle.set()

    async def run(self) -> None:
        prepare_q: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency * 4)
        upload_q: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.concurrency * 2)
        parking: Parking[Upload] = Parking(PARKED_PER_SLOT * self.concurrency, upload_q)
        senders = UPLOAD_TASKS_PER_SLOT * self.concurrency
        uploaders = [
            asyncio.create_task(self._upload_worker(upload_q, parking)) for _ in range(senders)
        ]
        preparers = max(2, self.concurrency)
        intake = asyncio.create_task(self._intake(prepare_q, upload_q, preparers, senders))
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
                    self.grace,
                )
                await self._drain(intake, uploaders)
        finally:
            stopping.cancel()
            for task in [intake, *uploaders]:
                task.cancel()
            await asyncio.gather(intake, *uploaders, return_exceptions=True)
            for upload in parking.clear():
                upload.job.data.discard()
            if everything.done() and not everything.cancelled():
                everything.exception()  # retrieved, so asyncio does not warn about it

    async def _drain(self, intake: asyncio.Task[None], uploaders: list[asyncio.Task[None]]) -> None:
        _, pending = (
            await asyncio.wait([intake, *uploaders], timeout=self.grace)
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

    # --- 1. intake ------------------------------------------------------------------------------

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
            if await self._produce(prepare_q):
                self.on_sources_done()
            for _ in workers:
                await self._put(prepare_q, _DONE)
            await asyncio.gather(*workers)
            # Every job sent or given up, parked ones included: no job can come back now.
            with contextlib.suppress(Stopped):
                await self.stop.first(self._idle.wait())
            for _ in range(uploaders):
                await self._put(upload_q, _DONE)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _produce(self, prepare_q: asyncio.Queue[Any]) -> bool:
        """Triage every batch; True when the sources ran out (not stopped early)."""
        async for batch in self.batches:
            if self.stop.requested:
                return False
            for work in await self.preparer.triage(batch):
                if not await self._put(prepare_q, work):
                    return False
        return True

    # --- 2. prepare -----------------------------------------------------------------------------

    async def _prepare_worker(
        self, prepare_q: asyncio.Queue[Any], upload_q: asyncio.Queue[Any]
    ) -> None:
        while True:
            work = await self._get(prepare_q)
            if work is _DONE:
                return
            assert isinstance(work, Triaged)
            job = await self.preparer.prepare(work)
            if job is None:
                continue
            self._count_unfinished(+1)
            if not await self._put(upload_q, job):
                self._count_unfinished(-1)
                job.data.discard()

    # --- 3. upload ------------------------------------------------------------------------------

    async def _upload_worker(self, upload_q: asyncio.Queue[Any], parking: Parking[Upload]) -> None:
        sender = self.sender
        while True:
            item = (None if self.stop.requested else parking.take()) or await self._get(upload_q)
            if item is _DONE:
                return
            upload = item if isinstance(item, Upload) else sender.begin(item)
            parked = False
            try:
                parked = await self._attempts(sender, upload, parking)
            finally:
                if not parked:
                    upload.job.data.discard()
                    self._count_unfinished(-1)

    async def _attempts(self, sender: Sending, upload: Upload, parking: Parking[Upload]) -> bool:
        """Attempts of `upload` until it is dealt with (False) or parked for a backoff (True)."""
        while (seconds := await sender.attempt(upload)) is not None:
            if parking.park(upload, seconds):
                return True  # a task takes it again once its wait is over
            if self.stop.requested or await self.stop.nap(seconds):
                return False  # the entry stays pending for the next run
        return False

    def _count_unfinished(self, change: int) -> None:
        self._unfinished += change
        if self._unfinished:
            self._idle.clear()
        else:
            self._idle.set()

    # --- 4. queues that give way to a stop -------------------------------------------------------

    async def _get(self, queue: asyncio.Queue[Any]) -> Any:
        """The next item, or _DONE as soon as the run is stopping (idle workers end at once)."""
        if self.stop.requested:
            return _DONE
        if not queue.empty():
            return queue.get_nowait()
        try:
            item = await self.stop.first(queue.get())
        except Stopped:
            return _DONE
        if item is _DONE or not self.stop.requested:
            return item
        if isinstance(item, Upload):
            item = item.job
        if isinstance(item, Job):
            item.data.discard()
        return _DONE

    async def _put(self, queue: asyncio.Queue[Any], item: object) -> bool:
        """Put unless the run is stopping; False if the item was not queued."""
        if item is _DONE and self.stop.requested:
            return False
        if not queue.full():
            queue.put_nowait(item)
            return True
        try:
            await self.stop.first(queue.put(item))
        except Stopped:
            return False
        return True
