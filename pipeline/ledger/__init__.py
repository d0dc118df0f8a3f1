"""The ledger: the one source of truth for resuming. See `models` for what each table holds.

Kept light on purpose: importing `pipeline.ledger.location` (which the settings do) must not pull
in Alembic or the engine; `open_ledger` imports them when a ledger is really opened.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pipeline.ledger.location import Location, parse_location

if TYPE_CHECKING:
    from pipeline.ledger.store import Clock, Ledger

__all__ = ["Location", "open_ledger"]


async def open_ledger(
    where: Location | str, *, clock: Clock = time.time, check: bool = True
) -> Ledger:
    """Check, create or upgrade the schema, then return a Ledger over it. `check=False` when
    the caller has already run `migrate.check_file`."""
    from pipeline.ledger.migrate import upgrade
    from pipeline.ledger.store import Ledger, create_engine_for

    location = parse_location(where)
    await upgrade(location, check=check)
    return Ledger(create_engine_for(location), location, clock=clock)
