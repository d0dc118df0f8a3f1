"""A rerun's shortcut on an SQLite ledger: which files of one directory listing are done and
unchanged (the same size and mtime as when they were hashed), decided in the crawl's own worker
thread with one `sqlite3` query per listing: no thread hop, no SQLAlchemy, no object per
unchanged file.

Only what the run's decision (`run/plan.py`) would certainly skip as done is taken out here: a
purpose known, old enough for --min-age, the recorded hash's size and mtime unchanged, the source
itself fine and its content done. Every other file goes the usual way, so the outcome of a run is
the same with or without this. So is any trouble reading the ledger: an `sqlite3.Error` (a locked,
removed or damaged file) makes `done` answer "none", and the usual way meets and reports it. The
file is opened `mode=rw`, so a ledger removed under the run is never created again here.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.core.states import ContentStatus, SourceStatus
from pipeline.ledger.plain import BUSY_TIMEOUT

CHUNK = 500  # keys per query: well under SQLite's bound-parameter limit
# The unary `+` keeps SQLite's planner off `ix_sources_state` (status, ...): with hundreds of
# keys in the IN list it would otherwise pick that index and read every done source for each
# listing (30 ms a query on a 20,000-file ledger, against about 1 ms by the (source, purpose) key).
QUERY = (
    "SELECT sources.source, sources.size, sources.mtime_ns FROM sources "
    "JOIN contents ON sources.content_id = contents.id "
    "WHERE sources.purpose = ? AND +sources.status = ? AND +contents.status = ? "
    "AND sources.sha256 IS NOT NULL AND sources.source IN ({})"
)
Listed = tuple[str, int, int]  # a file of a listing: (ledger key, size, mtime_ns)


class UnchangedFiles:
    """Asked from worker threads, one listing at a time: one connection, opened on first use and
    shared under a lock (a connection per thread would hold a page cache each, up to 2 MB, for
    as many threads as the default executor has)."""

    def __init__(
        self,
        path: Path,
        *,
        min_age_ns: int | None = None,
        on_skipped: Callable[[int], None] = lambda _: None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.uri = path.absolute().as_uri() + "?mode=rw"
        self.min_age_ns = min_age_ns
        self.on_skipped = on_skipped
        self.clock_ns = clock_ns
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def done(self, purpose: str, files: Sequence[Listed]) -> set[str]:
        """Of `files`, the keys done and unchanged. Blocking: for the listing's worker thread."""
        if not purpose or not files:
            return set()
        if self.min_age_ns is not None:
            oldest = self.clock_ns() - self.min_age_ns
            files = [f for f in files if f[2] <= oldest]  # younger ones: the usual way says so
        wanted = {key: (size, mtime) for key, size, mtime in files}
        try:
            with self._lock:
                found = self._found(purpose, wanted)
        except sqlite3.Error:
            return set()  # unreadable now: every file goes the usual way, which reports it
        return found

    def _found(self, purpose: str, wanted: dict[str, tuple[int, int]]) -> set[str]:
        conn, found, keys = self._connected(), set[str](), list(wanted)
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            sql = QUERY.format(",".join("?" * len(chunk)))
            args = (purpose, SourceStatus.OK.value, ContentStatus.DONE.value, *chunk)
            rows = conn.execute(sql, args)
            found.update(key for key, size, mtime in rows if wanted[key] == (size, mtime))
        return found

    def skipped(self, count: int) -> None:
        """`count` files were left out of the crawl so (called on the event loop)."""
        self.on_skipped(count)

    def _connected(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(
                self.uri,
                uri=True,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,  # any worker thread, one at a time (the lock)
            )
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
