"""What `ingest status` needs of the ledger, with no SQLAlchemy: importing SQLAlchemy costs most
of a short command's start-up, and an SQLite ledger at the newest schema can be read with the
standard `sqlite3` module alone.

The SQL below is what SQLAlchemy compiles the Core queries of `queries.py` (and the checks of
`engines.py`) to for SQLite, literal values inlined; a test compiles them and compares, so the
two cannot drift apart. `SQLITE_FIGURES` names them the way `figures.read_figures` asks.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from pipeline.core.records import EXPORT_FIELDS
from pipeline.core.states import ContentStatus, SourceStatus

# The newest migration in migrations/versions/ (`models` re-exports it). A ledger at this
# revision is opened without loading Alembic at all; a test keeps it in step with the migrations.
SCHEMA_REVISION = "0004"

# Seconds a connection waits for another's write before it gives up ("database is locked"): the
# `timeout` of every plain `sqlite3.connect`, and the busy_timeout of every connection.
BUSY_TIMEOUT = 10.0
# Every connection to a ledger sets these. WAL + NORMAL: a process crash loses nothing. Not while
# checking a file that may not be ours: switching to WAL rewrites the file's header.
WAL_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
PRAGMAS = (f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000:.0f}", "PRAGMA foreign_keys=ON")

OUR_TABLES = frozenset({"alembic_version", "contents", "sources", "runs"})  # and no other
EXPORT_COLUMNS = (*EXPORT_FIELDS, "extra")  # a row of `export_batches`: extra as JSON text
SHOWN = 5  # the most common errors, and the last runs, that status lists

OUR_TABLES_SQL = "SELECT 1 FROM runs, sources, contents WHERE 1 = 0"
REVISION_SQL = "SELECT version_num FROM alembic_version"
_RUNS = (
    "SELECT runs.id, runs.started_at, runs.finished_at, runs.pid, runs.host, runs.command, "
    "runs.status, runs.exit_code, runs.summary, runs.heartbeat_at, runs.lease \nFROM runs"
)
SQLITE_FIGURES = {
    "counts": (
        "SELECT sources.status, sources.content_status, sources.purpose, count(*) AS count_1 \n"
        "FROM sources GROUP BY sources.status, sources.content_status, sources.purpose"
    ),
    "own_errors": (
        "SELECT sources.error, count(*) AS count_1 \nFROM sources \n"
        "WHERE sources.status = 'failed' AND sources.error IS NOT NULL GROUP BY sources.error"
    ),
    "content_errors": (
        "SELECT contents.error, count(*) AS count_1 \n"
        "FROM sources JOIN contents ON sources.content_id = contents.id \n"
        "WHERE sources.status = 'ok' AND sources.content_status IN ('failed', 'pending') "
        "AND contents.error IS NOT NULL GROUP BY contents.error"
    ),
    "last_runs": f"{_RUNS} ORDER BY runs.id DESC\n LIMIT {SHOWN} OFFSET 0",
    "now": "SELECT CAST((julianday('now') - 2440587.5) * 86400.0 AS FLOAT) AS anon_1",
    "running": f"{_RUNS} \nWHERE runs.status = 'running' ORDER BY runs.id",
    "converted": (
        "SELECT contents.converted_from, contents.status, count(*) AS count_1 \nFROM contents \n"
        "WHERE contents.converted_from IS NOT NULL "
        "GROUP BY contents.converted_from, contents.status"
    ),
}


def shown_counts(rows: Iterable[Any]) -> list[tuple[str, str, int]]:
    """(purpose, status, sources) from `counts_query`'s rows, with the status exports show."""
    totals: collections.Counter[tuple[str, str]] = collections.Counter()
    for status, content_status, purpose, n in rows:
        shown = status if status != SourceStatus.OK else content_status
        totals[(str(purpose), str(shown or ContentStatus.PENDING))] += int(n)
    return [(purpose, status, n) for (purpose, status), n in sorted(totals.items())]


def top_errors(rows: Iterable[Any], limit: int) -> list[tuple[str, int]]:
    totals: collections.Counter[str] = collections.Counter()
    for error, n in rows:
        totals[str(error)] += int(n)
    return totals.most_common(limit)
