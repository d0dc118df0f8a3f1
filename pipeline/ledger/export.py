"""`ingest export`'s reads: every source as a record, a batch of rows at a time.

On an SQLite file the rows are read with the driver itself in a worker thread, which is where the
time goes for a million rows (SQLAlchemy's rows and the async bridge double it), and JSON lines
are made by SQLite itself (json_object), a few times faster than formatting them in Python.
Elsewhere the rows are streamed through the async engine. Memory stays flat either way.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from pipeline.ledger.models import sources
from pipeline.ledger.queries import (
    EXPORT_COLUMNS,
    effective_status,
    export_query,
    json_lines_query,
)

if TYPE_CHECKING:
    from pipeline.ledger.repository import RunLedger

BATCH = 5000  # rows handed on at a time

Rows = Sequence[Sequence[Any]]


async def batches(
    ledger: RunLedger, status: str | None = None, *, size: int = BATCH
) -> AsyncIterator[Rows]:
    """Every (source, purpose) as a row of `EXPORT_COLUMNS`, in source order, a batch of rows
    at a time, through the async engine."""
    query = _of_status(export_query(), status)
    async with ledger.engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=size))
        async for partition in result.partitions(size):
            yield partition


async def export_to(
    ledger: RunLedger, write: Callable[[Rows], object], status: str | None = None
) -> None:
    """Hand every export row, a batch at a time, to `write`."""
    path = ledger.location.path
    if path is None:
        async for batch in batches(ledger, status):
            write(batch)
        return
    await _read_file(ledger, path, _of_status(export_query(), status), write)


async def json_lines(
    ledger: RunLedger, write: Callable[[str], object], status: str | None = None, *, end: str = "\n"
) -> bool:
    """On an SQLite file: write the JSON lines export, each line made by SQLite. False, having
    written nothing, on other databases."""
    path = ledger.location.path
    if path is None:
        return False

    def lines(rows: Rows) -> None:
        write(end.join(row[0] for row in rows) + end)

    await _read_file(ledger, path, _of_status(json_lines_query(), status), lines)
    return True


async def records(ledger: RunLedger, status: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """One record per (source, purpose), as a dict, `extra` parsed; for tests and tools."""
    async for batch in batches(ledger, status):
        for row in batch:
            record = dict(zip(EXPORT_COLUMNS, row, strict=True))
            extra = record.pop("extra")
            record["extra"] = json.loads(extra) if extra else {}
            record["retryable"] = bool(record["retryable"])
            yield record


async def extra_columns(ledger: RunLedger) -> list[str]:
    """The manifest columns kept on any source, in the order they first appear."""
    query = select(sources.c.extra).where(sources.c.extra.is_not(None)).order_by(sources.c.id)
    found: dict[str, None] = {}
    async with ledger.engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=BATCH))
        async for (extra,) in result:
            found.update(dict.fromkeys(json.loads(extra)))
    return list(found)


def _of_status(query: Select[Any], status: str | None) -> Select[Any]:
    """`query` narrowed to the rows whose effective status is `status` (None: all of them)."""
    return query if status is None else query.where(effective_status() == status)


async def _read_file(
    ledger: RunLedger, path: Path, query: Select[Any], write: Callable[[Rows], object]
) -> None:
    """Run `query` on the SQLite file itself, in a worker thread, handing `write` its rows a
    batch at a time."""
    compiled = query.compile(dialect=ledger.engine.dialect)
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    await asyncio.to_thread(_read_sqlite, path, str(compiled), params, write)


def _read_sqlite(
    path: Path, sql: str, params: tuple[Any, ...], write: Callable[[Rows], object]
) -> None:
    """Blocking: run `sql` on a read-only connection and pass its rows on in batches."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(BATCH):
            write(rows)
    finally:
        conn.close()
