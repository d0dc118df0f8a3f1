"""What `ingest status` shows, read in one go by one function on either back end: counts, the
contents decoded to WAV by format, top errors, the last runs and the runs going now.

`read_figures` runs on a synchronous connection. An SQLite ledger at the newest schema is read
that way directly (`read_sqlite`), with no asyncio machinery and no ORM loaded (SQLAlchemy's
asyncio layer imports its ORM), so `status` answers in a fraction of a second; any other ledger
through the async engine's `run_sync` (`read_async`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from pipeline.ledger.engines import OUR_TABLES_QUERY, REVISION_QUERY, create_sync_engine_for
from pipeline.ledger.location import Location
from pipeline.ledger.models import SCHEMA_REVISION
from pipeline.ledger.queries import (
    converted_query,
    counts_query,
    db_epoch,
    error_queries,
    last_runs_query,
    running_query,
    shown_counts,
    top_errors,
)

if TYPE_CHECKING:
    from pipeline.ledger.store import Ledger

SHOWN = 5  # the most common errors, and the last runs, that status lists


@dataclasses.dataclass(frozen=True)
class Figures:
    counts: list[tuple[str, str, int]]  # (purpose, status as exports show it, sources)
    errors: list[tuple[str, int]]
    runs: Sequence[Any]
    now: float  # the database's clock, for the age of the running runs' heartbeats
    running: Sequence[Any]
    converted: list[tuple[str, str, int]]  # (decoded from, content status, contents)


def read_figures(conn: Connection, dialect: str) -> Figures:
    errors: list[Any] = []
    for query in error_queries():
        errors += list(conn.execute(query))
    return Figures(
        counts=shown_counts(conn.execute(counts_query())),
        errors=top_errors(errors, SHOWN),
        runs=list(conn.execute(last_runs_query(SHOWN)).mappings()),
        now=float(conn.scalar(select(db_epoch(dialect))) or 0.0),
        running=list(conn.execute(running_query()).mappings()),
        converted=[(str(f), str(s), int(n)) for f, s, n in conn.execute(converted_query())],
    )


def read_sqlite(location: Location) -> Figures | None:
    """The figures of an SQLite ledger already at the newest schema; None when it is not (the
    caller then opens it the usual way, which upgrades it)."""
    engine = create_sync_engine_for(location)
    assert engine is not None
    try:
        with engine.connect() as conn:
            conn.execute(OUR_TABLES_QUERY)
            if conn.scalar(REVISION_QUERY) != SCHEMA_REVISION:
                return None
            return read_figures(conn, "sqlite")
    except Exception:  # noqa: BLE001 (not a ledger at head, or unreadable: the usual way says why)
        return None
    finally:
        engine.dispose()


async def read_async(ledger: Ledger) -> Figures:
    """The same figures through an open ledger's async engine."""
    async with ledger.engine.connect() as conn:
        return await conn.run_sync(read_figures, ledger.dialect)
