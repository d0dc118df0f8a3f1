"""One run at a time per ledger: an exclusive flock on `<ledger>.lock`.

The kernel drops the lock when its process dies, however it dies (kill -9 included), so a stale
hold is taken over without any timeout or guesswork. The lock file is created empty and never
written; who holds it is read from the ledger's `runs` table (the run still marked running).
Only SQLite ledgers are locked this way; a server database would use its own advisory locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from pipeline.core.errors import LedgerError, LedgerHeld


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
