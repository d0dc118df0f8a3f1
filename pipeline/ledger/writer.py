"""The ledger's single writer: every state change of every entry, committed in groups.

Tasks hand their changes to `Writer` and go on; one task applies everything that has queued up
in a single transaction, with one `executemany` per kind of change, then commits, then tells the
waiting tasks. There is no fixed window: a commit takes whatever arrived while the previous one
ran, so under load many changes share one commit and when idle a change is committed at once.
Changes are applied in the order they were queued.

A caller awaits the changes it must know are durable before it goes on (the link of a source to
its content, whose id it needs; an upload's `done`, before its request slot is reused), and
fires and forgets the others (a skipped or failed source, an attempt counted), which are
committed within milliseconds anyway.

If the ledger cannot be written (disk full, read-only, removed), every waiting and later change
fails with `LedgerWriteError` naming the ledger and the operating system's reason; the run stops
on it, and the next run resumes from what was committed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pipeline.core.errors import LedgerUnreachable, LedgerWriteError
from pipeline.core.records import UploadResult
from pipeline.core.states import SourceStatus
from pipeline.flow.backoff import patience, retrying
from pipeline.ledger.claims import Claims, heartbeat
from pipeline.ledger.engines import worth_retrying
from pipeline.ledger.rows import SourceFacts, source_row
from pipeline.ledger.statements import Link, Statements
from pipeline.ledger.store import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")
WATCH_EVERY = 1.0  # seconds between looks at the ledger file's identity


@dataclasses.dataclass(slots=True)
class _Op:
    kind: str  # claim | source | link | leave | reset | attempt | done | failed | call | flush
    params: dict[str, Any]
    future: asyncio.Future[Any] | None = None
    work: Callable[[Connection], Any] | None = None


class Writer:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        dialect: str,
        shown: str,
        clock: Clock,
        run_id: int,
        watch: Path | None = None,
        claims: Claims | None = None,
        sync_engine: Engine | None = None,
    ) -> None:
        self._engine = engine
        # On SQLite the commits run on a synchronous connection in a thread of the writer's
        # own: a whole commit is then one hand-off, not one per statement.
        self._sync_engine = sync_engine
        self._thread = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-writer")
            if sync_engine is not None
            else None
        )
        self._sync_conn: Connection | None = None
        self.claims = claims  # a shared (PostgreSQL) ledger: claims with leases
        # An SQLite file removed or replaced under a running process takes every later write
        # into a file nobody will open again, without an error: look at the path now and then.
        self._watch = watch
        self._identity = _identity(watch)
        self._looked = 0.0
        self._dialect = dialect
        self._shown = shown
        self._clock = clock
        self.run_id = run_id
        self._ops: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self.failure: LedgerWriteError | None = None
        self.patience = 600.0  # seconds a briefly failing database is waited for
        self.unreachable = False  # the failure is a server out of reach for too long
        self.on_failure: Callable[[LedgerWriteError], None] = lambda _: None
        self._statements = Statements(dialect, claims)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Writer]:
        """Run the writer for the block; on leaving, commit what is queued (unless cancelled)."""
        self._task = asyncio.create_task(self._loop(), name="ledger-writer")
        try:
            yield self
            if self.failure is None:
                # A failure here is kept in `self.failure` for the caller to report.
                with contextlib.suppress(LedgerWriteError):
                    await self.flush()
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self._close_connections()

    async def _close_connections(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                await self._conn.close()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sync)
            self._thread.shutdown(wait=False)

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            with contextlib.suppress(DBAPIError):
                self._sync_conn.close()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    # --- what callers queue -------------------------------------------------------------------

    def record_source(
        self,
        facts: SourceFacts,
        *,
        status: SourceStatus = SourceStatus.OK,
        error: str | None = None,
        retryable: bool = False,
        content_id: int | None = None,
    ) -> None:
        """Insert or update the (source, purpose) row. Fire and forget."""
        params = self._row(facts, status, error, retryable, content_id)
        self._submit(_Op("source", params))

    async def link(self, facts: SourceFacts, *, sha256: str, size: int) -> Link:
        """Get or create the content for these bytes and purpose, record the source against it."""
        params = self._row(facts, SourceStatus.OK, None, False, None)
        params.update(c_sha256=sha256, c_size=size)
        result: Link = await self._wait(_Op("link", params))
        return result

    def leave_source(self, source: str, purpose: str, reason: str) -> None:
        """The source's bytes changed after it was linked: forget its hash so the next run
        hashes it again, and mark it left for that run. Fire and forget."""
        params = {"b_source": source, "b_purpose": purpose, "error": reason}
        self._submit(_Op("leave", params | {"updated_at": self._clock()}))

    async def reset(self, content_id: int) -> bool:
        """A failed content about to be tried again starts from pending; False when another
        run (on a shared ledger) got to it first."""
        if self.claims is not None:
            claims = self.claims
            return await self.call(lambda conn: claims.reset(conn, content_id))
        self._submit(_Op("reset", {"c_id": content_id, "updated_at": self._clock()}))
        return True

    async def claim_source(self, facts: SourceFacts) -> bool:
        """On a shared ledger, claim a source before its bytes are read; False when another live
        run holds it. The claims queued for one commit are taken together. Its row, if new, is
        enough to find the entry again should this run die."""
        if self.claims is None:
            return True
        row = source_row(
            facts,
            status=SourceStatus.OK,
            error=None,
            retryable=False,
            content_id=None,
            run_id=self.run_id,
            now=self._clock(),
        )
        claimed: bool = await self._wait(_Op("claim", row))
        return claimed

    async def call(self, work: Callable[[Connection], T]) -> T:
        """Run `work` inside the next commit (before the other changes queued with it), and
        return what it returns: for the claims of a shared ledger."""
        result: T = await self._wait(_Op("call", {}, work=work))
        return result

    def attempt(self, content_id: int) -> None:
        """Count an attempt before its request is sent. Fire and forget."""
        self._submit(_Op("attempt", {"c_id": content_id, "updated_at": self._clock()}))

    async def done(self, content_id: int, result: UploadResult) -> None:
        now = self._clock()
        params = {
            "c_id": content_id,
            "voice_id": result.voice_id,
            "instrumental_id": result.instrumental_id,
            "trace_id": result.trace_id,
            "updated_at": now,
            "done_at": now,
        }
        await self._wait(_Op("done", params))

    async def failed(
        self, content_id: int, error: str, *, trace_id: str | None, retryable: bool
    ) -> None:
        params = {
            "c_id": content_id,
            "error": error,
            "trace_id": trace_id,
            "retryable": int(retryable),
            "updated_at": self._clock(),
        }
        await self._wait(_Op("failed", params))

    async def heartbeat(self, summary: str) -> int:
        """Say the run is alive, with its figures so far (JSON), renewing its claims on a shared
        ledger: how many runs are live on the ledger, this one included (1 on SQLite)."""
        claims = self.claims
        if claims is not None:
            return await self.call(lambda conn: claims.heartbeat(conn, summary))
        await self.call(lambda conn: heartbeat(conn, self._dialect, self.run_id, summary))
        return 1

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (a commit under way included)."""
        await self._wait(_Op("flush", {}))

    # --- the loop -----------------------------------------------------------------------------

    def _submit(self, op: _Op) -> None:
        if self.failure is not None:
            raise self.failure
        self._ops.append(op)
        self._wake.set()

    async def _wait(self, op: _Op) -> Any:
        op.future = asyncio.get_running_loop().create_future()
        self._submit(op)
        return await op.future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._ops = self._ops, []
            try:
                results = await self._commit_patiently(batch)
                # A flush (the end of a run included) always looks: a run shorter than the
                # watch interval must not report success for writes into a removed file.
                self._look_at_file(force=any(op.kind == "flush" for op in batch))
            except (DBAPIError, _FileGone) as exc:
                self._fail(batch, exc)
                return
            for op, result in zip(batch, results, strict=True):
                if op.future is not None and not op.future.done():
                    op.future.set_result(result)

    async def _commit(self, batch: Sequence[_Op]) -> list[Any]:
        """One transaction on the writer's own connection (no pool checkout per commit); a
        connection the server dropped is replaced."""
        if self._thread is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._commit_sync, batch)
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = await self._engine.connect()
        async with self._conn.begin():
            return await self._conn.run_sync(self._statements.apply, batch)

    def _commit_sync(self, batch: Sequence[_Op]) -> list[Any]:
        """Blocking, in the writer's thread: the same transaction on a synchronous connection."""
        assert self._sync_engine is not None
        if self._sync_conn is None or self._sync_conn.invalidated or self._sync_conn.closed:
            self._sync_conn = self._sync_engine.connect()
        with self._sync_conn.begin():
            return self._statements.apply(self._sync_conn, batch)

    async def _commit_patiently(self, batch: Sequence[_Op]) -> list[Any]:
        """Commit, trying again while the database is only briefly in the way: a deadlock
        with another run (one of the two is rolled back whole), or a server restarting or
        out of reach, for up to `patience` seconds. Every change is safe to apply again."""
        try:
            async for attempt in retrying(
                patience(self.patience),
                sleep=asyncio.sleep,
                retry_on=worth_retrying,
                before_sleep=self._trying_again,
            ):
                with attempt:
                    return await self._commit(batch)
        except DBAPIError as exc:
            self.unreachable = worth_retrying(exc)  # it passes, but did not pass in time
            raise
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _trying_again(self, error: BaseException, attempt: int, seconds: float) -> None:
        if attempt >= 5 and isinstance(error, DBAPIError):  # a deadlock is over at once
            log.warning("ledger %s: %s; trying again", self._shown, _os_reason(error))

    @property
    def watching(self) -> bool:
        """The ledger is a file on this host (SQLite)."""
        return self._watch is not None

    def _look_at_file(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self._watch is None or (not force and now - self._looked < WATCH_EVERY):
            return
        self._looked = now
        if _identity(self._watch) != self._identity:
            raise _FileGone("the file was removed or replaced while this run was using it")

    def _fail(self, batch: Sequence[_Op], exc: DBAPIError | _FileGone) -> None:
        reason = _os_reason(exc) if isinstance(exc, DBAPIError) else str(exc)
        if self.unreachable:
            self.failure = LedgerUnreachable(
                f"ledger {self._shown} has been out of reach for {self.patience:.0f} s: {reason}"
            )
        else:
            self.failure = LedgerWriteError(f"ledger {self._shown} cannot be written: {reason}")
        log.error("%s", self.failure)
        for op in [*batch, *self._ops]:
            if op.future is not None and not op.future.done():
                op.future.set_exception(self.failure)
        self._ops = []
        self.on_failure(self.failure)

    def _row(
        self,
        facts: SourceFacts,
        status: SourceStatus,
        error: str | None,
        retryable: bool,
        content_id: int | None,
    ) -> dict[str, Any]:
        row = source_row(
            facts,
            status=status,
            error=error,
            retryable=retryable,
            content_id=content_id,
            run_id=self.run_id,
            now=self._clock(),
        )
        return row | {"c_replaces_no_purpose": facts.replaces_no_purpose}


class _FileGone(Exception):
    """The ledger file at its path is not the one this run opened."""


def _identity(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _os_reason(exc: DBAPIError) -> str:
    """The database's own words ("database or disk is full", "attempt to write a readonly
    database", "disk I/O error"), without SQLAlchemy's wrapping."""
    return str(exc.orig).strip() or type(exc.orig).__name__
