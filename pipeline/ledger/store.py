"""The ledger as a run reads it, on SQLAlchemy's async engine (a database server; an SQLite
file has `sqlite_store.py`): the runs table (a run's start and end, runs that died) and what the
ledger knows of each source.

Every write of an entry's state goes through the single `Writer` (see `writer.py`), which
commits the changes of many entries in one transaction; `status` reads `figures.py` and `export`
reads `export.py`. Reads here are batched too: the state of
a whole directory listing or manifest batch is fetched in one query, so a rerun over an unchanged
catalogue costs a few microseconds per file. The SQL (`queries.py`) is dialect-neutral: this
serves PostgreSQL, and an SQLite database given by a URL with no file (in memory).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.core.errors import LedgerUnreachable, LedgerWriteError
from pipeline.core.records import SourceState
from pipeline.core.states import RunStatus
from pipeline.flow.backoff import patience as patience_of
from pipeline.flow.backoff import retrying
from pipeline.ledger.engines import worth_retrying
from pipeline.ledger.location import Location
from pipeline.ledger.queries import (
    CONTENT_OF_QUERY,
    FINISH_RUN,
    STATE_QUERY,
    abandoned_runs,
    start_run,
)
from pipeline.ledger.repository import Clock

LOOKUP_CHUNK = 500  # keys per lookup query: well under every driver's bound-parameter limit


class Ledger:
    """Repository over an AsyncEngine whose schema is already at head (see migrate.upgrade)."""

    def __init__(self, engine: AsyncEngine, location: Location, *, clock: Clock = time.time):
        self.engine = engine
        self.location = location
        self.dialect = location.dialect
        self.clock = clock

    async def close(self) -> None:
        await self.engine.dispose()

    # --- runs -------------------------------------------------------------------------------

    async def start_run(self, *, pid: int, host: str, command: str, lease: float = 60.0) -> int:
        row = {"started_at": self.clock(), "pid": pid, "host": host, "command": command}
        row |= {"status": RunStatus.RUNNING, "lease": lease}
        async with self.engine.begin() as conn:
            result = await conn.execute(start_run(self.dialect), row)
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def finish_run(
        self, run_id: int, *, status: RunStatus, exit_code: int, summary: Mapping[str, Any]
    ) -> None:
        """Record how the run ended; LedgerWriteError (with the database's reason) when the
        ledger cannot take it any more."""
        row = {"run_id": run_id, "finished_at": self.clock(), "status": status}
        row |= {"exit_code": exit_code, "summary": json.dumps(summary, sort_keys=True)}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(FINISH_RUN, row)
        except DBAPIError as exc:
            raise LedgerWriteError(f"ledger {self.location} cannot be written: {exc.orig}") from exc

    async def close_abandoned_runs(self) -> int:
        """Runs that died without finishing, marked so. On SQLite, every run still marked
        running once we hold the ledger; on a shared ledger, those whose heartbeat stopped."""
        async with self.engine.begin() as conn:
            result = await conn.execute(abandoned_runs(self.dialect))
            return int(result.rowcount or 0)

    # --- sources ----------------------------------------------------------------------------

    async def states(self, keys: Iterable[str]) -> dict[tuple[str, str], SourceState]:
        """What the ledger knows of these sources, by (source, purpose); one query per chunk."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], SourceState] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                result = await conn.execute(STATE_QUERY, {"keys": chunk})
                for source, purpose, *state in result:
                    found[(source, purpose)] = SourceState(*state)  # the query's column order
        return found

    async def states_patiently(
        self, keys: Iterable[str], *, patience: float
    ) -> dict[tuple[str, str], SourceState]:
        """`states`, waiting (up to `patience` seconds) for a server that restarts: the same
        policy and test as the writer's commits."""
        wanted = list(keys)
        try:
            async for attempt in retrying(
                patience_of(patience), sleep=asyncio.sleep, retry_on=worth_retrying
            ):
                with attempt:
                    return await self.states(wanted)
        except DBAPIError as exc:
            if not worth_retrying(exc):
                raise LedgerWriteError(
                    f"ledger {self.location} cannot be read: {exc.orig}"
                ) from exc
            raise LedgerUnreachable(
                f"ledger {self.location} has been out of reach for {patience:.0f} s: {exc.orig}"
            ) from exc
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def content_of(self, sha256: str, purpose: str) -> tuple[str, bool] | None:
        """(status, retryable) of these bytes for this purpose, None if never seen."""
        async with self.engine.connect() as conn:
            params = {"sha256": sha256, "purpose": purpose}
            row = (await conn.execute(CONTENT_OF_QUERY, params)).first()
        return None if row is None else (str(row[0]), bool(row[1]))
