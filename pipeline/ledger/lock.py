"""One run at a time per ledger: an exclusive flock on `<ledger>.lock`.

The kernel drops the lock when its process dies, however it dies (kill -9 included), so a stale
hold is taken over without any timeout or guesswork. The lock file is created empty and never
written; who holds it is read from the ledger's `runs` table (the run still marked running).
Only SQLite ledgers are locked this way; runs on a server database share it through claims
(`claims.py`). `held` is what the commands use: `hold` with the holder named from the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from pipeline.core.errors import LedgerError, LedgerHeld
from pipeline.core.times import local_time
from pipeline.ledger.location import Location

log = logging.getLogger("pipeline")


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.asynccontextmanager
async def hold(
    db_path: Path | None,
    *,
    wait: bool,
    describe_holder: Callable[[], Awaitable[str]],
    on_wait: Callable[[str], None] = lambda _: None,
    poll: float = 0.5,
) -> AsyncIterator[None]:
    """Hold the ledger for the duration of the block, or raise LedgerHeld (wait=False)."""
    if db_path is None:
        yield
        return
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LedgerError(f"cannot create lock file {path}: {exc.strerror or exc}") from exc
    try:
        if not _try_lock(fd):
            holder = await describe_holder()
            if not wait:
                raise LedgerHeld(
                    f"ledger {db_path} is held by {holder}; pass --wait to wait for it"
                )
            on_wait(holder)
            while not _try_lock(fd):
                await asyncio.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def held(location: Location, *, wait: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """This process's hold on an SQLite ledger, for the duration of the block: LedgerHeld when
    another live run has it (unless `wait`). Nothing to hold for a server database."""
    path = location.path
    return hold(
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
    return f"run #{run_id} (pid {pid} on {host}, started {local_time(started)})"
