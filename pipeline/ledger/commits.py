"""Where the writer's transactions run: the two back ends of one `commit(batch)`.

- `ThreadCommitter` (an SQLite file): a synchronous connection in a thread of the writer's own,
  so a whole commit is one hand-off to that thread, not one per statement;
- `AsyncCommitter` (a server database): the async engine's own connection, the statements run
  through `run_sync`.

Each keeps one connection for the run (no pool checkout per commit) and replaces it when the
server dropped it. The statements themselves are `statements.py`'s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pipeline.ledger.statements import Op, Statements


class Committer(Protocol):
    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        """Apply `batch` in one transaction: each op's result, in order."""
        ...

    async def close(self) -> None: ...


class ThreadCommitter:
    def __init__(self, engine: Engine, statements: Statements) -> None:
        self._engine = engine
        self._statements = statements
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-writer")
        self._conn: Connection | None = None

    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._commit, batch)

    def _commit(self, batch: Sequence[Op]) -> list[Any]:
        """Blocking, in the writer's thread."""
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self._engine.connect()
        with self._conn.begin():
            return self._statements.apply(self._conn, batch)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.close()
        self._engine.dispose()


class AsyncCommitter:
    def __init__(self, engine: AsyncEngine, statements: Statements) -> None:
        self._engine = engine
        self._statements = statements
        self._conn: AsyncConnection | None = None

    async def commit(self, batch: Sequence[Op]) -> list[Any]:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = await self._engine.connect()
        async with self._conn.begin():
            return await self._conn.run_sync(self._statements.apply, batch)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                await self._conn.close()
