"""The ledger as a run reads it, on an SQLite file, with the standard `sqlite3` module alone: the
runs table and what the ledger knows of each source (the `RunLedger` of `repository.py`).

Importing SQLAlchemy's async stack cost a run on an SQLite file a third of its start-up, for a
handful of statements; they are written out in `sqlite_sql.py`. One connection, opened on first
use, runs them in a thread of its own (one query per hop: a whole batch of sources is read in
one). The writer (`writer.py`) commits every change of an entry on a connection of its own.

SQLAlchemy's async engine is still made, when something asks for it (`engine`): `export` and
the status figures of a ledger that needed an upgrade. A run never does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.core.errors import LedgerWriteError
from pipeline.core.records import SourceState
from pipeline.core.states import RunStatus
from pipeline.ledger import sqlite_sql as sql
from pipeline.ledger.commits import LedgerConnection, reason_of
from pipeline.ledger.location import Location
from pipeline.ledger.repository import Clock, States

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


class SqliteLedger:
    def __init__(self, path: Path, location: Location, *, clock: Clock = time.time) -> None:
        self.path = path
        self.location = location
        self.dialect = location.dialect
        self.clock = clock
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger")
        # mode=rw: the schema is made (`schema.ready`); a file removed since is not remade.
        self._conn = LedgerConnection(path)
        self._engine: AsyncEngine | None = None
        self._closed = False

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            from pipeline.ledger.engines import create_engine_for

            self._engine = create_engine_for(self.location)
        return self._engine

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._run(self._conn.drop)
        self._thread.shutdown(wait=False)
        if self._engine is not None:
            await self._engine.dispose()

    # --- runs -------------------------------------------------------------------------------

    async def start_run(self, *, pid: int, host: str, command: str, lease: float = 60.0) -> int:
        row = {"started_at": self.clock(), "pid": pid, "host": host, "command": command}
        row |= {"status": RunStatus.RUNNING.value, "lease": lease}
        cursor = await self._write(sql.START_RUN, row)
        return int(cursor.lastrowid or 0)

    async def finish_run(
        self, run_id: int, *, status: RunStatus, exit_code: int, summary: Mapping[str, Any]
    ) -> None:
        row = {"run_id": run_id, "finished_at": self.clock(), "status": status.value}
        row |= {"exit_code": exit_code, "summary": json.dumps(summary, sort_keys=True)}
        await self._write(sql.FINISH_RUN, row)

    async def close_abandoned_runs(self) -> int:
        """Every run still marked running once we hold the ledger (the lock says none is)."""
        return int((await self._write(sql.CLOSE_ABANDONED, {})).rowcount)

    # --- sources ----------------------------------------------------------------------------

    async def states(self, keys: Iterable[str]) -> States:
        """What the ledger knows of these sources, by (source, purpose): one hop for them all."""
        return await self._read(functools.partial(self._states, list(dict.fromkeys(keys))))

    async def states_patiently(self, keys: Iterable[str], *, patience: float) -> States:
        """`states`: a file does not restart (its busy timeout waits for a writer)."""
        return await self.states(keys)

    async def content_of(self, sha256: str, purpose: str) -> tuple[str, bool] | None:
        params = {"sha256": sha256, "purpose": purpose}
        row = await self._read(functools.partial(self._one, sql.CONTENT_OF, params))
        return None if row is None else (str(row[0]), bool(row[1]))

    # --- in the ledger's thread -------------------------------------------------------------

    def _states(self, wanted: list[str]) -> States:
        """One query, the keys given as one JSON list (no limit on how many)."""
        keys = json.dumps(wanted, ensure_ascii=False)
        rows = self._conn.get().execute(sql.STATES.text, {"keys": keys})
        return {(source, purpose): SourceState(*state) for source, purpose, *state in rows}

    def _one(self, statement: sql.Sql, params: dict[str, Any]) -> Any:
        return self._conn.get().execute(statement.text, params).fetchone()

    async def _read(self, work: Callable[[], T]) -> T:
        """`work` in the ledger's thread; LedgerWriteError with the database's reason when the
        ledger cannot be read."""
        try:
            return await self._run(work)
        except sqlite3.Error as exc:
            reason = reason_of(exc)
            raise LedgerWriteError(f"ledger {self.location} cannot be read: {reason}") from exc

    async def _write(self, statement: sql.Sql, row: dict[str, Any]) -> sqlite3.Cursor:
        """Run one statement in a transaction of its own; LedgerWriteError with the database's
        reason when the ledger cannot take it."""
        params = {**statement.defaults, **row}

        def write() -> sqlite3.Cursor:
            conn = self._conn.get()
            with conn:  # BEGIN ... COMMIT, or ROLLBACK on an error
                conn.execute("BEGIN")
                return conn.execute(statement.text, params)

        try:
            return await self._run(write)
        except sqlite3.Error as exc:
            raise LedgerWriteError(
                f"ledger {self.location} cannot be written: {reason_of(exc)}"
            ) from exc

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)
