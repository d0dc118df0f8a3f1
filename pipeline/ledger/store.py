"""The ledger repository: the engine, the reads, the runs table and the reports.

Every write of an entry's state goes through the single `Writer` (see `writer.py`), which
commits the changes of many entries in one transaction. Reads here are batched too: the state of
a whole directory listing or manifest batch is fetched in one query, so a rerun over an unchanged
catalogue costs a few microseconds per file. The SQL is dialect-neutral; SQLite and PostgreSQL
differ only in the engine set-up below and the upsert statement (`dialect_insert`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    cast,
    event,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pipeline.errors import LedgerUnreachable, LedgerWriteError
from pipeline.ledger.location import Location
from pipeline.ledger.models import contents, runs, sources
from pipeline.states import ContentStatus, RunStatus, SourceStatus

Clock = Callable[[], float]
LOOKUP_CHUNK = 500  # keys per lookup query: well under every driver's bound-parameter limit


@dataclasses.dataclass(frozen=True, slots=True)
class SourceState:
    """What the ledger knows of one (source, purpose)."""

    id: int
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str  # SourceStatus of the source itself
    retryable: int  # of the source's failure
    error: str | None
    content_id: int | None
    content_status: str | None  # ContentStatus, when linked
    content_retryable: int | None

    def effective_status(self) -> str:
        if self.status != SourceStatus.OK:
            return self.status
        return self.content_status or ContentStatus.PENDING

    def failed_for_good(self) -> bool:
        """Failed, and not by running out of attempts on transient errors."""
        if self.status == SourceStatus.FAILED:
            return not self.retryable
        return self.content_status == ContentStatus.FAILED and not self.content_retryable


@dataclasses.dataclass(frozen=True, slots=True)
class SourceFacts:
    """What was learned about a source in this run, to be recorded."""

    source: str
    purpose: str
    kind: str  # file | url
    written: str | None = None
    path: str | None = None
    filename: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    line: int | None = None
    external_id: str | None = None
    extra: Mapping[str, str] | None = None
    origin: str | None = None
    replaces_no_purpose: bool = False  # an earlier run recorded it with no purpose: drop that


def _sqlite_connect(dbapi_conn: Any, _record: ConnectionPoolEntry, *, wal: bool) -> None:
    # The driver's own transaction handling commits before DDL and never begins before a SELECT;
    # switch it off and let SQLAlchemy emit BEGIN itself (the `begin` listener), so a migration
    # is one transaction and a batch of writes is too.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    if wal:  # not while checking a file that may not be ours: it rewrites the file's header
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a process crash loses nothing
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def create_engine_for(location: Location, *, checking: bool = False) -> AsyncEngine:
    """The engine for a ledger; `checking` for one that may not be ours yet (no WAL switch)."""
    if location.dialect == "postgresql":
        # A server restarted under a run leaves dead connections in the pool: test each one.
        return create_async_engine(location.url, pool_pre_ping=True)
    engine = create_async_engine(location.url)
    if location.dialect == "sqlite":
        connect = functools.partial(_sqlite_connect, wal=not checking)
        event.listen(engine.sync_engine, "connect", connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


_OUR_TABLES_QUERY = text("SELECT 1 FROM runs, sources, contents WHERE 1 = 0")
_REVISION_QUERY = text("SELECT version_num FROM alembic_version")


async def schema_revision(location: Location) -> str | None:
    """The ledger's schema revision, read without Alembic; None when it has none (new, empty,
    or not a ledger: the migrations then look closer)."""
    engine = create_engine_for(location, checking=True)
    try:
        async with engine.connect() as conn:
            await conn.execute(_OUR_TABLES_QUERY)  # fails unless every table of ours is there
            revision = await conn.scalar(_REVISION_QUERY)
            return None if revision is None else str(revision)
    except DBAPIError:
        return None
    finally:
        await engine.dispose()


def db_epoch(dialect: str) -> ColumnElement[float]:
    """The database's clock, in epoch seconds (several hosts' clocks need not agree)."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return cast((func.julianday("now") - 2440587.5) * 86400.0, Float)


def live_runs(now: ColumnElement[float]) -> ColumnElement[bool]:
    """Runs still going: marked running, with a heartbeat younger than their lease."""
    return and_(
        runs.c.status == RunStatus.RUNNING,
        runs.c.heartbeat_at.is_not(None),
        runs.c.heartbeat_at + func.coalesce(runs.c.lease, 60.0) >= now,
    )


def dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    """INSERT with ON CONFLICT support for this dialect (the two share one API)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_STATE_QUERY = (
    select(
        sources.c.source,
        sources.c.purpose,
        sources.c.id,
        sources.c.size,
        sources.c.mtime_ns,
        sources.c.sha256,
        sources.c.status,
        sources.c.retryable,
        sources.c.error,
        sources.c.content_id,
        contents.c.status,
        contents.c.retryable,
    )
    .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
    .where(sources.c.source.in_(bindparam("keys", expanding=True)))
)


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
            result = await conn.execute(
                select(runs).where(runs.c.status == RunStatus.RUNNING).order_by(runs.c.id)
            )
            return float(now or 0.0), list(result.mappings())

    async def last_runs(self, limit: int = 5) -> list[RowMapping]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit))
            return list(result.mappings())

    # --- sources ----------------------------------------------------------------------------

    async def states(self, keys: Iterable[str]) -> dict[tuple[str, str], SourceState]:
        """What the ledger knows of these sources, by (source, purpose); one query per chunk."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], SourceState] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                result = await conn.execute(_STATE_QUERY, {"keys": chunk})
                for source, purpose, *state in result:
                    found[(source, purpose)] = SourceState(*state)  # the query's column order
        return found

    async def states_patiently(
        self, keys: Iterable[str], *, patience: float
    ) -> dict[tuple[str, str], SourceState]:
        """`states`, waiting (up to `patience` seconds) for a server that restarts."""
        wanted = list(keys)
        started, delay = time.monotonic(), 0.1
        while True:
            try:
                return await self.states(wanted)
            except DBAPIError as exc:
                lost = exc.connection_invalidated or isinstance(exc.orig, OSError)
                if not lost:
                    raise LedgerWriteError(
                        f"ledger {self.location} cannot be read: {exc.orig}"
                    ) from exc
                if time.monotonic() - started > patience:
                    raise LedgerUnreachable(
                        f"ledger {self.location} has been out of reach for {patience:.0f} s: "
                        f"{exc.orig}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)

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
        """(purpose, status, sources) for every source, with the status it shows in exports.
        One pass over an index (`ix_sources_state`), no join: fast on a million sources."""
        query = select(
            sources.c.status, sources.c.content_status, sources.c.purpose, func.count()
        ).group_by(sources.c.status, sources.c.content_status, sources.c.purpose)
        totals: collections.Counter[tuple[str, str]] = collections.Counter()
        async with self.engine.connect() as conn:
            for status, content_status, purpose, n in await conn.execute(query):
                shown = status if status != SourceStatus.OK else content_status
                totals[(str(purpose), str(shown or ContentStatus.PENDING))] += int(n)
        return [(purpose, status, n) for (purpose, status), n in sorted(totals.items())]

    async def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        """The commonest reasons among sources not done: their own, or their content's."""
        own = (
            select(sources.c.error, func.count())
            .where(sources.c.status == SourceStatus.FAILED, sources.c.error.is_not(None))
            .group_by(sources.c.error)
        )
        content = (
            select(contents.c.error, func.count())
            .select_from(sources.join(contents, sources.c.content_id == contents.c.id))
            .where(
                sources.c.status == SourceStatus.OK,
                sources.c.content_status.in_([ContentStatus.FAILED, ContentStatus.PENDING]),
                contents.c.error.is_not(None),
            )
            .group_by(contents.c.error)
        )
        totals: collections.Counter[str] = collections.Counter()
        async with self.engine.connect() as conn:
            for query in (own, content):
                for error, n in await conn.execute(query):
                    totals[str(error)] += int(n)
        return totals.most_common(limit)

    async def export_batches(
        self, status: str | None = None, *, size: int = 5000
    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Every (source, purpose) as a row of `EXPORT_COLUMNS`, in source order, a batch of
        rows at a time (streamed: a million rows in flat memory)."""
        query = _export_query()
        if status is not None:
            query = query.where(_effective_status() == status)
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
        query = _export_query()
        if status is not None:
            query = query.where(_effective_status() == status)
        compiled = query.compile(dialect=self.engine.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        await asyncio.to_thread(_read_sqlite, path, str(compiled), params, write)

    async def export_json_lines(
        self, write: Callable[[str], object], status: str | None = None, *, end: str = "\n"
    ) -> bool:
        """On an SQLite file: write the JSON lines export, each line made by SQLite itself
        (json_object), which is a few times faster than formatting them in Python. False,
        having written nothing, on other databases."""
        path = self.location.path
        if path is None:
            return False
        query = _json_lines_query()
        if status is not None:
            query = query.where(_effective_status() == status)
        compiled = query.compile(dialect=self.engine.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())

        def lines(rows: Sequence[Sequence[Any]]) -> None:
            write(end.join(row[0] for row in rows) + end)

        await asyncio.to_thread(_read_sqlite, path, str(compiled), params, lines)
        return True

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


# One exported record: these fields, in this order (README.md documents them), then `extra`.
EXPORT_FIELDS = (
    "source",
    "purpose",
    "sha256",
    "status",
    "voice_id",
    "instrumental_id",
    "error",
    "attempts",
    "retryable",
    "trace_id",
    "size",
    "kind",
    "filename",
    "line",
    "external_id",
)
EXPORT_COLUMNS = (*EXPORT_FIELDS, "extra")  # a row of `export_batches`: extra as JSON text


def _export_query() -> Any:
    return (
        select(
            func.coalesce(sources.c.written, sources.c.source).label("source"),
            sources.c.purpose,
            sources.c.sha256,
            _effective_status().label("status"),
            contents.c.voice_id,
            contents.c.instrumental_id,
            func.coalesce(sources.c.error, contents.c.error).label("error"),
            func.coalesce(contents.c.attempts, 0).label("attempts"),
            case(
                (sources.c.status == SourceStatus.FAILED, sources.c.retryable),
                else_=func.coalesce(contents.c.retryable, 0),
            ).label("retryable"),
            contents.c.trace_id,
            sources.c.size,
            sources.c.kind,
            sources.c.filename,
            sources.c.line,
            sources.c.external_id,
            sources.c.extra,
        )
        .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
        .order_by(sources.c.id)
    )


def _json_lines_query() -> Any:
    """`_export_query`, each row as one JSON object made by SQLite (the same fields, in the same
    order, `retryable` a boolean, `extra` only where there is one)."""
    base = _export_query()
    columns = {column.name: column for column in base.selected_columns}
    pairs: list[Any] = []
    for name in EXPORT_FIELDS:
        value = columns[name]
        if name == "retryable":
            value = func.json(case((value != 0, "true"), else_="false"))
        pairs += [literal(name), value]
    record = func.json_object(*pairs)
    extra = columns["extra"]
    line = case((extra.is_(None), record), else_=func.json_set(record, "$.extra", func.json(extra)))
    return base.with_only_columns(line)


def _effective_status() -> Any:
    """What a source shows: its own failure, else its content's status (the copy kept on the
    source row, so no join is needed), else pending."""
    return case(
        (sources.c.status != SourceStatus.OK, sources.c.status),
        (sources.c.content_status.is_(None), ContentStatus.PENDING),
        else_=sources.c.content_status,
    )
