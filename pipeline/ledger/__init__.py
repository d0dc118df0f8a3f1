"""The ledger: the one source of truth for resuming. See `models` for what each table holds."""

from __future__ import annotations

import asyncio
import time

from pipeline.ledger.migrate import upgrade
from pipeline.ledger.store import Clock, Ledger, SourceFacts, SourceState, create_engine_for

__all__ = ["Ledger", "SourceFacts", "SourceState", "open_ledger"]


async def open_ledger(url: str, *, clock: Clock = time.time) -> Ledger:
    """Check, create or upgrade the schema at `url`, then return a Ledger over it."""
    await asyncio.to_thread(upgrade, url)
    return Ledger(create_engine_for(url), clock=clock)
