"""What `ingest status` shows, read in one go: counts, top errors, the last runs and the runs
going now. An SQLite ledger is read synchronously, with no asyncio machinery and no ORM loaded
(SQLAlchemy's asyncio layer imports its ORM), so `status` answers in a fraction of a second;
a PostgreSQL one through the async repository.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from pipeline.ledger.engines import OUR_TABLES_QUERY, REVISION_QUERY, create_sync_engine_for
from pipeline.ledger.location import Location
from pipeline.ledger.models import SCHEMA_REVISION
from pipeline.ledger.queries import (
    counts_query,
    db_epoch,
    error_queries,
    last_runs_query,
    running_query,
    shown_counts,
    top_errors,
)


@dataclasses.dataclass(frozen=True)
class Figures:
    counts: list[tuple[str, str, int]]
    errors: list[tuple[str, int]]
    runs: Sequence[Any]
    now: float  # the database's clock, for the age of the running runs' heartbeats
    running: Sequence[Any]


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
            errors: list[Any] = []
            for query in error_queries():
                errors += list(conn.execute(query))
            return Figures(
                counts=shown_counts(conn.execute(counts_query())),
                errors=top_errors(errors, 5),
                runs=list(conn.execute(last_runs_query(5)).mappings()),
                now=float(conn.scalar(select(db_epoch("sqlite"))) or 0.0),
                running=list(conn.execute(running_query()).mappings()),
            )
    except Exception:  # noqa: BLE001 (not a ledger at head, or unreadable: the usual way says why)
        return None
    finally:
        engine.dispose()
