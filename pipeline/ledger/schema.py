"""A ledger's schema made ready without Alembic where Alembic has nothing to decide.

Opening a ledger looks at its tables in one transaction:

- at the newest revision: nothing to do;
- no tables at all (a new file, a new database): the tables of `models.py` are created and the
  revision is stamped, in that same transaction, as the migrations would leave them (a test
  compares the two schemas). A kill at any moment leaves the database as it was, with no tables;
- anything else (an older ledger, one that an older ingest left half-created, someone else's
  database): Alembic's `migrate.upgrade` is left to check and upgrade it, or to refuse it.

Importing Alembic and building its migration context costs more than the rest of a short run's
start-up; a first run, and every dry run without a ledger, now pays for neither. On an SQLite
file, neither does it load SQLAlchemy: the same check and the same schema, written out for
SQLite (`sqlite_sql.SCHEMA`), run on the standard `sqlite3` module.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.ledger import sqlite_sql as sql
from pipeline.ledger.location import Location
from pipeline.ledger.plain import (
    BUSY_TIMEOUT,
    OUR_TABLES,
    PRAGMAS,
    REVISION_SQL,
    SCHEMA_REVISION,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


async def ready(location: Location) -> bool:
    """True when the ledger is at the newest schema: it was, or it had no tables and has just
    been created whole. False when Alembic must look at it (or it cannot be read: then Alembic
    says why)."""
    if location.path is not None:
        return file_ready(location.path)
    from sqlalchemy.exc import DBAPIError

    from pipeline.ledger.engines import create_engine_for

    engine = create_engine_for(location, checking=True)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(_ready)
    except DBAPIError:
        return False
    finally:
        await engine.dispose()


def file_ready(path: Path) -> bool:
    """`ready` for an SQLite file, with `sqlite3` alone. (Blocking: a few milliseconds, before
    a run starts.) No WAL switch here: the file may not be ours."""
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        for pragma in PRAGMAS:
            conn.execute(pragma)
        with conn:  # one transaction: the check, and the tables if there were none
            conn.execute("BEGIN")
            tables = {name for (name,) in conn.execute(sql.TABLES)}
            if not tables:
                for statement in sql.SCHEMA:
                    conn.execute(statement)
                conn.execute(sql.STAMP, {"version_num": SCHEMA_REVISION})
                return True
            return tables == OUR_TABLES and _revision(conn) == SCHEMA_REVISION
    except sqlite3.Error:
        return False
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()


def _revision(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(REVISION_SQL).fetchone()
    return None if row is None else str(row[0])


def _ready(conn: Connection) -> bool:
    from sqlalchemy import inspect

    from pipeline.ledger.engines import REVISION_QUERY

    tables = set(inspect(conn).get_table_names())
    if not tables:
        create(conn)
        return True
    return tables == OUR_TABLES and conn.scalar(REVISION_QUERY) == SCHEMA_REVISION


def create(conn: Connection) -> None:
    """Every table and index of the newest schema, and its revision, on `conn`'s transaction."""
    from pipeline.ledger.models import metadata, version_table

    metadata.create_all(conn, checkfirst=False)
    version_table.create(conn, checkfirst=False)
    conn.execute(version_table.insert().values(version_num=SCHEMA_REVISION))
