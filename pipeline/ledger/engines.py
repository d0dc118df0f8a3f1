"""SQLAlchemy's async engine for a ledger, with the settings a ledger needs: for a ledger on a
server, the migrations, `export`, and `status` where it cannot read the file with `sqlite3`
alone. (A run on an SQLite file uses plain `sqlite3` connections, `sqlite_store.py` and
`commits.py`, which set the same `plain.WAL_PRAGMAS` and `plain.PRAGMAS`.)"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from pipeline.ledger.location import Location
from pipeline.ledger.plain import OUR_TABLES_SQL, PRAGMAS, REVISION_SQL, WAL_PRAGMAS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


def _sqlite_connect(dbapi_conn: Any, _record: ConnectionPoolEntry, *, wal: bool) -> None:
    # The driver's own transaction handling commits before DDL and never begins before a SELECT;
    # switch it off and let SQLAlchemy emit BEGIN itself (the `begin` listener), so a migration
    # is one transaction and a batch of writes is too.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    for pragma in (*WAL_PRAGMAS, *PRAGMAS) if wal else PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def create_engine_for(location: Location, *, checking: bool = False) -> AsyncEngine:
    """The engine for a ledger; `checking` for one that may not be ours yet (no WAL switch).
    (SQLAlchemy's asyncio layer brings its ORM with it: imported here, not by `status`.)"""
    from sqlalchemy.ext.asyncio import create_async_engine

    if location.dialect == "postgresql":
        # A server restarted under a run leaves dead connections in the pool: test each one.
        return create_async_engine(location.url, pool_pre_ping=True)
    engine = create_async_engine(location.url)
    if location.dialect == "sqlite":
        connect = functools.partial(_sqlite_connect, wal=not checking)
        event.listen(engine.sync_engine, "connect", connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


OUR_TABLES_QUERY = text(OUR_TABLES_SQL)
REVISION_QUERY = text(REVISION_SQL)


# PostgreSQL states that pass: a deadlock or serialization failure (the transaction was rolled
# back whole), a lock not available, the server shutting down or not yet accepting connections.
PASSING_STATES = frozenset({"40P01", "40001", "55P03", "57P01", "57P02", "57P03"})


def worth_retrying(exc: BaseException) -> bool:
    """Whether trying the same transaction again can succeed: a database error that passes (a
    deadlock, a server restarting or out of reach), not one that will happen again."""
    if not isinstance(exc, DBAPIError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or ""
    lost = exc.connection_invalidated or isinstance(exc.orig, OSError | ConnectionError)
    return lost or state in PASSING_STATES or state.startswith("08")
