"""What a run asks of its ledger, whatever holds it: the runs table (a run's start and end, runs
that died) and what the ledger knows of each source and content.

Two classes meet it: `sqlite_store.SqliteLedger` on an SQLite file, with the standard `sqlite3`
module alone, and `store.Ledger` on SQLAlchemy's async engine (a database server). Every write
of an entry's state goes through the writer (`writer.py`), not through these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.records import SourceState
from pipeline.core.states import RunStatus
from pipeline.ledger.location import Location

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Clock = Callable[[], float]
States = dict[tuple[str, str], SourceState]  # by (source, purpose)


class RunLedger(Protocol):
    location: Location
    dialect: str  # sqlite | postgresql
    clock: Clock

    @property
    def engine(self) -> AsyncEngine:
        """SQLAlchemy's async engine on the ledger (for `export`, `status` on a server, and a
        server ledger's writer); on an SQLite file, made only when asked for."""
        ...

    async def close(self) -> None: ...

    async def start_run(self, *, pid: int, host: str, command: str, lease: float = 60.0) -> int:
        """Record a run starting: its id."""
        ...

    async def finish_run(
        self, run_id: int, *, status: RunStatus, exit_code: int, summary: Mapping[str, Any]
    ) -> None:
        """Record how the run ended; LedgerWriteError (with the database's reason) when the
        ledger cannot take it any more."""
        ...

    async def close_abandoned_runs(self) -> int:
        """Mark the runs that died without finishing: how many."""
        ...

    async def states(self, keys: Iterable[str]) -> States:
        """What the ledger knows of these sources."""
        ...

    async def states_patiently(self, keys: Iterable[str], *, patience: float) -> States:
        """`states`, waiting up to `patience` seconds for a server that restarts."""
        ...

    async def content_of(self, sha256: str, purpose: str) -> tuple[str, bool] | None:
        """(status, retryable) of these bytes for this purpose, None if never seen."""
        ...
