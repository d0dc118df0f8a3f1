"""A run among others on one ledger: its heartbeat, its share of the rate, and work taken over.

    # while the run goes, every lease / 4 seconds: renew this run's claims, record its figures
    #   and the time (the database's clock), count the live runs, and pace at `--rate` divided
    #   by that count (the account's limit is shared);
    # when its sources are all read: take over pending work from the same folders and
    #   manifests that no live run holds (a run that died, a claim that expired), until nothing
    #   of theirs is held by another live run any more;
    # at the end: release its claims, so the others need not wait for them to expire.

On SQLite a run has its ledger to itself: only the heartbeat runs (so `status` shows how far a
run has got), and there is nothing to take over. The claims themselves are in
`ledger/claims.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pipeline.core.entry import Entry
from pipeline.core.errors import LedgerWriteError
from pipeline.core.stop import Stop
from pipeline.flow.throttle import Throttle
from pipeline.ledger.rows import entry_from_row
from pipeline.ledger.writer import Writer

log = logging.getLogger(__name__)
TAKE_OVER_BATCH = 32  # small: the work is shared out as it goes, not in big lumps
POLL = 1.0  # seconds between looks for work another run left, while one still holds some


class Fleet:
    def __init__(
        self,
        *,
        writer: Writer,
        lease: float,
        rate: float | None,
        throttle: Throttle | None,
        figures: Callable[[], dict[str, Any]],
        on_beat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.writer = writer
        self.lease = lease
        self.rate = rate
        self.throttle = throttle
        self.figures = figures
        self.live = 1  # runs live on this ledger, this one included, at the last heartbeat
        self.on_beat = on_beat  # told the figures at each heartbeat (the metrics file)

    @contextlib.asynccontextmanager
    async def beating(self) -> AsyncIterator[None]:
        """Heartbeats for the duration of the block; claims released when it ends."""
        await self.beat()
        task = asyncio.create_task(self._beat_forever(), name="heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LedgerWriteError):
                await task
            await self._release()

    async def beat(self) -> None:
        figures = self.figures()
        if self.on_beat is not None:
            self.on_beat(figures)
        live = await self.writer.heartbeat(json.dumps(figures, sort_keys=True))
        if live != self.live:
            log.info("%d run(s) live on this ledger", live)
        self.live = live
        if self.rate is not None and self.throttle is not None:
            self.throttle.set_rate(self.rate / max(1, live))  # the account's limit, shared

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 4)
            await self.beat()

    async def _release(self) -> None:
        claims = self.writer.claims
        if claims is None or self.writer.failure is not None:
            return
        with contextlib.suppress(LedgerWriteError):
            await self.writer.call(claims.release)

    async def leftovers(self, origins: Sequence[str], stop: Stop) -> AsyncIterator[list[Entry]]:
        """Batches of pending work from `origins` that no live run holds, taken over (claimed)
        by this run; ends when nothing of theirs is held by another live run."""
        claims = self.writer.claims
        if claims is None:
            return
        fed: set[int] = set()
        while not stop.requested:
            rows = await self.writer.call(
                lambda conn: claims.take_over(conn, origins, fed, TAKE_OVER_BATCH)
            )
            if rows:
                fed.update(row.id for row in rows)
                log.info("taking over %d entries no live run holds", len(rows))
                yield [entry_from_row(row) for row in rows]
                continue
            held = await self.writer.call(lambda conn: claims.held_elsewhere(conn, origins))
            if not held:
                return
            await stop.nap(min(self.lease / 4, POLL))
