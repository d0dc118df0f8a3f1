"""The ledger repository: the reads, the runs table and the reports, on the async engine.

Every write of an entry's state goes through the single `Writer` (see `writer.py`), which
commits the changes of many entries in one transaction. Reads here are batched too: the state of
a whole directory listing or manifest batch is fetched in one query, so a rerun over an unchanged
catalogue costs a few microseconds per file. The SQL (`queries.py`) is dialect-neutral; SQLite and
PostgreSQL differ only in the engines (`engines.py`) and the upsert statement (`dialect_insert`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.core.errors import LedgerUnreachable, LedgerWriteError
from pipeline.core.records import SourceState
from pipeline.core.states import RunStatus
from pipeline.flow.backoff import patience as patience_of
from pipeline.flow.backoff import retrying
from pipeline.ledger.engines import worth_retrying
from pipeline.ledger.location import Location
from pipeline.ledger.models import contents, runs, sources
from pipeline.ledger.queries import (
    EXPORT_COLUMNS,
    STATE_QUERY,
    counts_query,
    db_epoch,
    effective_status,
    error_queries,
    export_query,
    json_lines_query,
    last_runs_query,
    live_runs,
    running_query,
    shown_counts,
    top_errors,
)

Clock = Callable[[], float]
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
        async with self.engine.begin() as conn:
            result = await conn.execute(
                runs.insert().values(
                    started_at=self.clock(),
                    pid=pid,
                    host=host,
                    command=command,
                    status=RunStatus.RUNNING,
                    heartbeat_at=db_epoch(self.dialect),
                    lease=lease,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def finish_run(
        self, run_id: int, *, status: RunStatus, exit_code: int, summary: Mapping[str, Any]
    ) -> None:
        """Record how the run ended; LedgerWriteError (with the database's reason) when the
        ledger cannot take it any more."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(runs)
                    .where(runs.c.id == run_id)
                    .values(
                        finished_at=self.clock(),
                        status=status,
                        exit_code=exit_code,
                        summary=json.dumps(summary, sort_keys=True),
                    )
                )
        except DBAPIError as exc:
            raise LedgerWriteError(f"ledger {self.location} cannot be written: {exc.orig}") from exc

    async def close_abandoned_runs(self) -> int:
        """Runs that died without finishing, marked so. On SQLite, every run still marked
        running once we hold the ledger; on a shared ledger, those whose heartbeat stopped."""
        ended = runs.c.status == RunStatus.RUNNING
        if self.dialect == "postgresql":
            ended = and_(ended, ~live_runs(db_epoch(self.dialect)))
        async with self.engine.begin() as conn:
            result = await conn.execute(update(runs).where(ended).values(status=RunStatus.CRASHED))
            return int(result.rowcount or 0)

    async def running(self) -> tuple[float, list[RowMapping]]:
        """(the database's time now, the runs marked running): live ones and lost ones, told
        apart by their heartbeat."""
        async with self.engine.connect() as conn:
            now = await conn.scalar(select(db_epoch(self.dialect)))
            result = await conn.execute(running_query())
            return float(now or 0.0), list(result.mappings())

    async def last_runs(self, limit: int = 5) -> list[RowMapping]:
        async with self.engine.connect() as conn:
            result = await conn.execute(last_runs_query(limit))
            return list(result.mappings())

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

    async def content_status_of(self, sha256: str, purpose: str) -> str | None:
        """Status of these bytes for this purpose, None if never seen. Reads only."""
        query = select(contents.c.status).where(
            contents.c.sha256 == sha256, contents.c.purpose == purpose
        )
        async with self.engine.connect() as conn:
            value = await conn.scalar(query)
        return None if value is None else str(value)

    # --- reporting --------------------------------------------------------------------------

    async def counts(self) -> list[tuple[str, str, int]]:
        """(purpose, status, sources) for every source, with the status it shows in exports."""
        async with self.engine.connect() as conn:
            return shown_counts(await conn.execute(counts_query()))

    async def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        """The commonest reasons among sources not done: their own, or their content's."""
        rows: list[Any] = []
        async with self.engine.connect() as conn:
            for query in error_queries():
                rows += list(await conn.execute(query))
        return top_errors(rows, limit)

    async def export_batches(
        self, status: str | None = None, *, size: int = 5000
    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Every (source, purpose) as a row of `EXPORT_COLUMNS`, in source order, a batch of
        rows at a time (streamed: a million rows in flat memory)."""
        query = _of_status(export_query(), status)
        async with self.engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=size))
            async for partition in result.partitions(size):
                yield partition

    async def export_to(
        self, write: Callable[[Sequence[Sequence[Any]]], object], status: str | None = None
    ) -> None:
        """Hand every export row, a batch at a time, to `write`. On an SQLite file the rows are
        read with the driver itself in a worker thread, which is where the time goes for a
        million rows (SQLAlchemy's rows and the async bridge double it); elsewhere through
        `export_batches`."""
        path = self.location.path
        if path is None:
            async for batch in self.export_batches(status):
                write(batch)
            return
        await self._read_file(path, _of_status(export_query(), status), write)

    async def export_json_lines(
        self, write: Callable[[str], object], status: str | None = None, *, end: str = "\n"
    ) -> bool:
        """On an SQLite file: write the JSON lines export, each line made by SQLite itself
        (json_object), which is a few times faster than formatting them in Python. False,
        having written nothing, on other databases."""
        path = self.location.path
        if path is None:
            return False

        def lines(rows: Sequence[Sequence[Any]]) -> None:
            write(end.join(row[0] for row in rows) + end)

        await self._read_file(path, _of_status(json_lines_query(), status), lines)
        return True

    async def _read_file(
        self, path: Path, query: Select[Any], write: Callable[[Sequence[Sequence[Any]]], object]
    ) -> None:
        """Run `query` on the SQLite file itself, in a worker thread, handing `write` its rows
        a batch at a time."""
        compiled = query.compile(dialect=self.engine.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        await asyncio.to_thread(_read_sqlite, path, str(compiled), params, write)

    async def export_rows(self, status: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """One record per (source, purpose), as a dict, `extra` parsed; for tests and tools."""
        async for batch in self.export_batches(status):
            for row in batch:
                record = dict(zip(EXPORT_COLUMNS, row, strict=True))
                extra = record.pop("extra")
                record["extra"] = json.loads(extra) if extra else {}
                record["retryable"] = bool(record["retryable"])
                yield record

    async def extra_columns(self) -> list[str]:
        """The manifest columns kept on any source, in the order they first appear."""
        query = select(sources.c.extra).where(sources.c.extra.is_not(None)).order_by(sources.c.id)
        found: dict[str, None] = {}
        async with self.engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=5000))
            async for (extra,) in result:
                found.update(dict.fromkeys(json.loads(extra)))
        return list(found)


def _of_status(query: Select[Any], status: str | None) -> Select[Any]:
    """`query` narrowed to the rows whose effective status is `status` (None: all of them)."""
    return query if status is None else query.where(effective_status() == status)


def _read_sqlite(
    path: Path, sql: str, params: tuple[Any, ...], write: Callable[[Sequence[Any]], object]
) -> None:
    """Blocking: run `sql` on a read-only connection and pass its rows on in batches."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(5000):
            write(rows)
    finally:
        conn.close()
