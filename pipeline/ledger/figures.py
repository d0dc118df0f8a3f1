"""What `ingest status` shows, put together by one function on either back end: counts, the
contents decoded to WAV by format, top errors, the last runs and the runs going now.

`read_figures` asks for each figure by name. An SQLite ledger at the newest schema answers with
the standard `sqlite3` module and the SQL text of `plain.py` (`read_sqlite`): no SQLAlchemy is
loaded at all, so `status` answers in a fraction of a second. Any other ledger answers with the
Core queries of `queries.py` through the async engine's `run_sync` (`read_async`); a test checks
that the SQL text is what those queries compile to.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.ledger.location import Location
from pipeline.ledger.plain import (
    BUSY_TIMEOUT,
    OUR_TABLES_SQL,
    REVISION_SQL,
    SCHEMA_REVISION,
    SHOWN,
    SQLITE_FIGURES,
    shown_counts,
    top_errors,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipeline.ledger.repository import RunLedger

RUN_FIGURES = ("last_runs", "running")  # the figures whose rows are runs, read by column name
Fetch = Callable[[str], Sequence[Any]]  # the rows of the figure named


@dataclasses.dataclass(frozen=True)
class Figures:
    counts: list[tuple[str, str, int]]  # (purpose, status as exports show it, sources)
    errors: list[tuple[str, int]]
    runs: Sequence[Mapping[str, Any]]
    now: float  # the database's clock, for the age of the running runs' heartbeats
    running: Sequence[Mapping[str, Any]]
    converted: list[tuple[str, str, int]]  # (decoded from, content status, contents)


def read_figures(fetch: Fetch) -> Figures:
    """Every figure, each from `fetch(name)` (names as in `plain.SQLITE_FIGURES`)."""
    errors = [*fetch("own_errors"), *fetch("content_errors")]
    return Figures(
        counts=shown_counts(fetch("counts")),
        errors=top_errors(errors, SHOWN),
        runs=fetch("last_runs"),
        now=float(fetch("now")[0][0] or 0.0),
        running=fetch("running"),
        converted=[(str(f), str(s), int(n)) for f, s, n in fetch("converted")],
    )


def read_sqlite(location: Location) -> Figures | None:
    """The figures of an SQLite ledger already at the newest schema, from one snapshot; None
    when it is not at that schema, or cannot be read (the caller then opens it the usual way,
    which upgrades it or says why not)."""
    path = location.path
    assert path is not None
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        conn.execute(OUR_TABLES_SQL)  # fails unless every table of ours is there
        if conn.execute(REVISION_SQL).fetchone() != (SCHEMA_REVISION,):
            return None
        conn.execute("BEGIN")  # one snapshot for every figure
        return read_figures(lambda name: _sqlite_rows(conn, name))
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _sqlite_rows(conn: sqlite3.Connection, name: str) -> list[Any]:
    cursor = conn.execute(SQLITE_FIGURES[name])
    if name not in RUN_FIGURES:
        return cursor.fetchall()
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


async def read_async(ledger: RunLedger) -> Figures:
    """The same figures through an open ledger's async engine."""
    async with ledger.engine.connect() as conn:
        return await conn.run_sync(_read_core, ledger.dialect)


def _read_core(conn: Connection, dialect: str) -> Figures:
    queries = core_figures(dialect)

    def fetch(name: str) -> Sequence[Any]:
        result = conn.execute(queries[name])
        return list(result.mappings()) if name in RUN_FIGURES else list(result)

    return read_figures(fetch)


def core_figures(dialect: str) -> dict[str, Any]:
    """The Core queries behind each figure, by the same names as `plain.SQLITE_FIGURES`."""
    from sqlalchemy import select

    from pipeline.ledger.queries import (
        converted_query,
        counts_query,
        db_epoch,
        error_queries,
        last_runs_query,
        running_query,
    )

    own, content = error_queries()
    return {
        "counts": counts_query(),
        "own_errors": own,
        "content_errors": content,
        "last_runs": last_runs_query(SHOWN),
        "now": select(db_epoch(dialect)),
        "running": running_query(),
        "converted": converted_query(),
    }
