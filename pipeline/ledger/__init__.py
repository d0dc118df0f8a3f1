"""The ledger: the one source of truth for resuming. See `models` for what each table holds.

The only importer of SQLAlchemy, Alembic and the database drivers. Kept light on purpose:
importing `pipeline.ledger.location` (which the settings do) loads none of them; `open_ledger`
imports them when a ledger on a database server is opened (an SQLite file needs only the
standard `sqlite3` module: `sqlite_store.py`), or an older ledger upgraded. May import
`pipeline.core`, `pipeline.content` (to record located bytes) and `pipeline.flow` (its retry
policy).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pipeline.ledger.location import Location, parse_location

if TYPE_CHECKING:
    from pipeline.ledger.repository import Clock, RunLedger

__all__ = ["Location", "open_ledger"]


async def open_ledger(
    where: Location | str, *, clock: Clock = time.time, check: bool = True
) -> RunLedger:
    """Check, create or upgrade the schema, then return the ledger over it: on an SQLite file,
    with `sqlite3` alone; elsewhere, on SQLAlchemy's async engine. `check=False` when the
    caller has already run `files.check_file`."""
    from pipeline.ledger.schema import ready

    location = parse_location(where)
    if check:
        _check_file(location)
    if not await ready(location):  # at the newest schema, or new and created so, in one go
        from pipeline.ledger.migrate import upgrade  # Alembic: only when there is work for it

        await upgrade(location, check=False)
    if location.path is not None:
        from pipeline.ledger.sqlite_store import SqliteLedger

        return SqliteLedger(location.path, location, clock=clock)
    from pipeline.ledger.engines import create_engine_for
    from pipeline.ledger.store import Ledger

    return Ledger(create_engine_for(location), location, clock=clock)


def _check_file(location: Location) -> None:
    from pipeline.ledger.files import check_file

    check_file(location)
