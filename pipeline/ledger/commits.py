"""Where the writer's transactions run: the two back ends of one `commit(batch)`.

- `ThreadCommitter` (an SQLite file): a plain `sqlite3` connection in a thread of the writer's
  own, so a whole commit is one hand-off to that thread, not one per statement, and the thread
  spends its time in SQLite rather than in SQLAlchemy's work per statement;
- `AsyncCommitter` (a server database): the async engine's own connection, the statements run
  through `run_sync`.

Each keeps one connection for the run (no pool checkout per commit) and replaces it when the
server dropped it. How a batch is applied is `statements.py`'s. Both raise a refused
commit as `DatabaseError`, in the database's own words and saying whether it passes, so the
writer judges both alike; an SQLite run loads no SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.ledger.plain import BUSY_TIMEOUT, PRAGMAS, WAL_PRAGMAS
from pipeline.ledger.statements import Op, SqliteStatements

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from pipeline.ledger.core_statements import CoreStatements


class DatabaseError(Exception):
    """A commit the database refused, in its own words ("database or disk is full", "attempt to
    write a readonly database"); `passing` when trying the same transaction again can succeed
    (a deadlock, a server restarting or out of reach), not when it will happen again."""

    def __init__(self, reason: str, *, passing: bool) -> None:
        super().__init__(reason)
        self.passing = passing


def reason_of(error: object) -> str:
    """A database error in its own words ("database is locked"), or its type where it has none."""
    return str(error).strip() or type(error).__name__


def connect_ledger(path: Path) -> sqlite3.Connection:
    """A connection to a ledger file that exists (`mode=rw`: one removed under the run is
    reported, never created again), with the settings every connection to a ledger has."""
    uri = path.absolute().as_uri() + "?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        for pragma in (*WAL_PRAGMAS, *PRAGMAS):
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


class LedgerConnection:
    """One plain connection to a ledger file, opened on first use (`connect_ledger`), and
    dropped after an error so that the next use starts on a fresh one. Used from one thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def get(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_ledger(self._path)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class Committer(Protocol):
    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        """Apply `batch` in one transaction: each op's result, in order."""
        ...

    async def close(self) -> None: ...


class ThreadCommitter:
    def __init__(self, path: Path, statements: SqliteStatements) -> None:
        self._conn = LedgerConnection(path)
        self._statements = statements
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-writer")

    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit, batch)

    def _commit(self, batch: Sequence[Op]) -> list[Any]:
        """Blocking, in the writer's thread."""
        try:
            conn = self._conn.get()
            conn.execute("BEGIN")
            try:
                results = self._statements.apply(conn, batch)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return results
        except sqlite3.Error as exc:
            self._conn.drop()  # the next commit starts on a fresh connection
            raise DatabaseError(reason_of(exc), passing=False) from exc

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._conn.drop)
        self._thread.shutdown(wait=False)


class AsyncCommitter:
    def __init__(self, engine: AsyncEngine, statements: CoreStatements) -> None:
        self._engine = engine
        self._statements = statements
        self._conn: AsyncConnection | None = None

    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        from sqlalchemy.exc import DBAPIError

        from pipeline.ledger.engines import worth_retrying

        try:
            if self._conn is None or self._conn.invalidated or self._conn.closed:
                self._conn = await self._engine.connect()
            async with self._conn.begin():
                return await self._conn.run_sync(self._statements.apply, batch)
        except DBAPIError as exc:
            raise DatabaseError(reason_of(exc.orig), passing=worth_retrying(exc)) from exc

    async def close(self) -> None:
        from sqlalchemy.exc import DBAPIError

        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                await self._conn.close()
