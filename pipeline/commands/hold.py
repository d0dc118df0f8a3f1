"""One run per SQLite ledger: take the hold, or say who has it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

from pipeline.ledger import Location, lock

log = logging.getLogger("pipeline")


def held(location: Location, *, wait: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """This process's hold on the ledger (see ledger/lock.py)."""
    path = location.path
    return lock.hold(
        path,
        wait=wait,
        describe_holder=lambda: asyncio.to_thread(_describe_holder, path),
        on_wait=lambda holder: log.info("ledger held by %s; waiting (--wait)", holder),
    )


def _describe_holder(path: Path | None) -> str:
    """Who holds the ledger, read without taking any lock (SQLite WAL readers never block)."""
    if path is None or not path.exists():
        return "another run"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT id, pid, host, started_at FROM runs WHERE status = 'running' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        row = None
    if row is None:
        return "another run (starting up)"
    run_id, pid, host, started = row
    return f"run #{run_id} (pid {pid} on {host}, started {fmt_time(started)})"


def fmt_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
