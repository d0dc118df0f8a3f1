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
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pipeline.errors import LedgerWriteError
from pipeline.ledger.models import contents, sources
from pipeline.ledger.store import Clock, SourceFacts, dialect_insert
from pipeline.model import UploadResult
from pipeline.states import ContentStatus, SourceStatus

log = logging.getLogger(__name__)
WATCH_EVERY = 1.0  # seconds between looks at the ledger file's identity


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """A source's content, after linking: its id and what the ledger says of it."""

    content_id: int
    status: str  # ContentStatus
    retryable: bool


@dataclasses.dataclass(slots=True)
class _Op:
    kind: str  # "source" | "link" | "leave" | "reset" | "attempt" | "done" | "failed" | "flush"
    params: dict[str, Any]
    future: asyncio.Future[Any] | None = None


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
    ) -> None:
        self._engine = engine
        # An SQLite file removed or replaced under a running process takes every later write
        # into a file nobody will open again, without an error: look at the path now and then.
        self._watch = watch
        self._identity = _identity(watch)
        self._looked = 0.0
        self._dialect = dialect
        self._shown = shown
        self._clock = clock
        self._run_id = run_id
        self._ops: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failure: LedgerWriteError | None = None
        self.on_failure: Callable[[LedgerWriteError], None] = lambda _: None
        self._statements = _Statements(dialect)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Writer]:
        """Run the writer for the block; on leaving, commit what is queued (unless cancelled)."""
        self._task = asyncio.create_task(self._loop(), name="ledger-writer")
        try:
            yield self
            if self.failure is None:
                await self.flush()
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
        params = self._source_params(facts, status, error, retryable, content_id)
        self._submit(_Op("source", params))

    async def link(self, facts: SourceFacts, *, sha256: str, size: int) -> Link:
        """Get or create the content for these bytes and purpose, record the source against it."""
        params = self._source_params(facts, SourceStatus.OK, None, False, None)
        params.update(c_sha256=sha256, c_size=size)
        result: Link = await self._wait(_Op("link", params))
        return result

    def leave_source(self, source: str, purpose: str, reason: str) -> None:
        """The source's bytes changed after it was linked: forget its hash so the next run
        hashes it again, and mark it left for that run. Fire and forget."""
        params = {"b_source": source, "b_purpose": purpose, "error": reason}
        self._submit(_Op("leave", params | {"updated_at": self._clock()}))

    def reset(self, content_id: int) -> None:
        """A failed content about to be tried again starts from pending."""
        self._submit(_Op("reset", {"c_id": content_id, "updated_at": self._clock()}))

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
                results = await self._commit(batch)
                self._look_at_file()
            except (DBAPIError, _FileGone) as exc:
                self._fail(batch, exc)
                return
            for op, result in zip(batch, results, strict=True):
                if op.future is not None and not op.future.done():
                    op.future.set_result(result)

    async def _commit(self, batch: Sequence[_Op]) -> list[Any]:
        async with self._engine.begin() as conn:
            return await self._statements.apply(conn, batch)

    def _look_at_file(self) -> None:
        now = time.monotonic()
        if self._watch is None or now - self._looked < WATCH_EVERY:
            return
        self._looked = now
        if _identity(self._watch) != self._identity:
            raise _FileGone("the file was removed or replaced while this run was using it")

    def _fail(self, batch: Sequence[_Op], exc: DBAPIError | _FileGone) -> None:
        reason = _os_reason(exc) if isinstance(exc, DBAPIError) else str(exc)
        self.failure = LedgerWriteError(f"ledger {self._shown} cannot be written: {reason}")
        log.error("%s", self.failure)
        for op in [*batch, *self._ops]:
            if op.future is not None and not op.future.done():
                op.future.set_exception(self.failure)
        self._ops = []
        self.on_failure(self.failure)

    def _source_params(
        self,
        facts: SourceFacts,
        status: SourceStatus,
        error: str | None,
        retryable: bool,
        content_id: int | None,
    ) -> dict[str, Any]:
        now = self._clock()
        extra = json.dumps(dict(facts.extra), ensure_ascii=False) if facts.extra else None
        return {
            "source": facts.source,
            "purpose": facts.purpose,
            "kind": facts.kind,
            "written": facts.written,
            "path": facts.path,
            "filename": facts.filename,
            "size": facts.size,
            "mtime_ns": facts.mtime_ns,
            "sha256": facts.sha256,
            "line": facts.line,
            "external_id": facts.external_id,
            "extra": extra,
            "status": status,
            "retryable": int(retryable),
            "error": error,
            "content_id": content_id,
            "run_id": self._run_id,
            "created_at": now,
            "updated_at": now,
        }


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


_SOURCE_COLUMNS = (
    "kind",
    "written",
    "path",
    "filename",
    "size",
    "mtime_ns",
    "sha256",
    "line",
    "external_id",
    "extra",
    "status",
    "retryable",
    "error",
    "content_id",
    "run_id",
    "updated_at",
)


class _Statements:
    """The statements of one commit, each run once per batch with all its rows."""

    def __init__(self, dialect: str) -> None:
        upsert = dialect_insert(dialect, sources)
        self.source_upsert = upsert.on_conflict_do_update(
            index_elements=["source", "purpose"],
            set_={name: upsert.excluded[name] for name in _SOURCE_COLUMNS},
        )
        self.drop_no_purpose = delete(sources).where(
            sources.c.source == bindparam("b_source"), sources.c.purpose == ""
        )
        self.content_insert = dialect_insert(dialect, contents).on_conflict_do_nothing(
            index_elements=["sha256", "purpose"]
        )
        self.content_lookup = select(
            contents.c.sha256, contents.c.purpose, contents.c.id, contents.c.status,
            contents.c.retryable,
        ).where(contents.c.sha256.in_(bindparam("shas", expanding=True)))  # fmt: skip
        by_id = contents.c.id == bindparam("c_id")
        self.reset = update(contents).where(by_id).values(status=ContentStatus.PENDING, retryable=0)
        self.attempt = update(contents).where(by_id).values(attempts=contents.c.attempts + 1)
        self.done = (
            update(contents).where(by_id).values(status=ContentStatus.DONE, error=None, retryable=0)
        )
        self.failed = update(contents).where(by_id).values(status=ContentStatus.FAILED)
        self.leave = (
            update(sources)
            .where(sources.c.source == bindparam("b_source"))
            .where(sources.c.purpose == bindparam("b_purpose"))
            .values(status=SourceStatus.FAILED, retryable=1, sha256=None, size=None)
        )

    async def apply(self, conn: AsyncConnection, batch: Sequence[_Op]) -> list[Any]:
        links = await self._links(conn, [op for op in batch if op.kind == "link"])
        for op in batch:
            if op.kind == "link":
                op.params["content_id"] = links[
                    (op.params["c_sha256"], op.params["purpose"])
                ].content_id
        await self._many(
            conn,
            self.source_upsert,
            [o.params for o in batch if o.kind in ("source", "link")],
            strip=True,
        )
        named = [
            {"b_source": o.params["source"]}
            for o in batch
            if o.kind in ("source", "link") and o.params["purpose"]
        ]
        await self._many(conn, self.drop_no_purpose, named)
        for kind in ("reset", "attempt", "done", "failed", "leave"):
            await self._many(conn, getattr(self, kind), [o.params for o in batch if o.kind == kind])
        return [
            links[(o.params["c_sha256"], o.params["purpose"])] if o.kind == "link" else None
            for o in batch
        ]

    async def _links(
        self, conn: AsyncConnection, ops: Sequence[_Op]
    ) -> dict[tuple[str, str], Link]:
        if not ops:
            return {}
        rows = [
            {
                "sha256": o.params["c_sha256"],
                "purpose": o.params["purpose"],
                "size": o.params["c_size"],
                "status": ContentStatus.PENDING,
                "attempts": 0,
                "created_at": o.params["created_at"],
                "updated_at": o.params["updated_at"],
            }
            for o in ops
        ]
        await conn.execute(self.content_insert, rows)
        shas = sorted({r["sha256"] for r in rows})
        found = await conn.execute(self.content_lookup, {"shas": shas})
        return {
            (sha, purpose): Link(cid, status, bool(retry))
            for sha, purpose, cid, status, retry in found
        }

    @staticmethod
    async def _many(
        conn: AsyncConnection, statement: Any, rows: list[dict[str, Any]], *, strip: bool = False
    ) -> None:
        if not rows:
            return
        if strip:
            rows = [{k: v for k, v in r.items() if not k.startswith("c_")} for r in rows]
        await conn.execute(statement, rows)
