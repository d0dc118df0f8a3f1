"""The ledger repository: every read and write of resumable state goes through `Ledger`.

State changes are recorded as soon as they are true (STYLE habit 3): a source is recorded when it
is hashed, linked to its content when probed, a content gets `attempts + 1` before each request
and `done` only after the service answered with ids. Each method is one short transaction of its
own, so concurrent tasks never share a session and a kill -9 loses at most the change in flight.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from sqlalchemy import case, event, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pipeline.ledger.models import contents, runs, sources

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class SourceState:
    """What the ledger knows of one (source, purpose)."""

    id: int
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str  # ok | failed (of the source itself)
    retryable: int  # of the source's failure
    error: str | None
    content_id: int | None
    content_status: str | None  # pending | done | failed, when linked
    content_retryable: int | None

    def effective_status(self) -> str:
        if self.status != "ok":
            return self.status
        return self.content_status or "pending"

    def failed_for_good(self) -> bool:
        """Failed, and not by running out of attempts on transient errors."""
        if self.status == "failed":
            return not self.retryable
        return self.content_status == "failed" and not self.content_retryable


@dataclasses.dataclass(frozen=True)
class SourceFacts:
    """What was learned about a source in this run, to be recorded."""

    source: str
    purpose: str
    kind: str  # file | url
    written: str | None = None
    path: str | None = None
    filename: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    line: int | None = None
    external_id: str | None = None
    extra: Mapping[str, str] | None = None


def _set_sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a process crash loses nothing
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine_for(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


class Ledger:
    """Repository over an AsyncEngine whose schema is already at head (see migrate.upgrade)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.time) -> None:
        self.engine = engine
        self._clock = clock

    async def close(self) -> None:
        await self.engine.dispose()

    # --- runs -------------------------------------------------------------------------------

    async def start_run(self, *, pid: int, host: str, command: str) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                runs.insert().values(
                    started_at=self._clock(), pid=pid, host=host, command=command, status="running"
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def finish_run(
        self, run_id: int, *, status: str, exit_code: int, summary: Mapping[str, Any]
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=self._clock(),
                    status=status,
                    exit_code=exit_code,
                    summary=json.dumps(summary, sort_keys=True),
                )
            )

    async def close_abandoned_runs(self) -> int:
        """Runs still marked running once we hold the ledger died without finishing."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(runs).where(runs.c.status == "running").values(status="crashed")
            )
            return int(result.rowcount or 0)

    async def last_runs(self, limit: int = 5) -> list[RowMapping]:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit))
            return list(result.mappings())

    # --- sources ----------------------------------------------------------------------------

    async def find_source(self, source: str, purpose: str) -> SourceState | None:
        query = (
            select(
                sources.c.id,
                sources.c.size,
                sources.c.mtime_ns,
                sources.c.sha256,
                sources.c.status,
                sources.c.retryable,
                sources.c.error,
                sources.c.content_id,
                contents.c.status.label("content_status"),
                contents.c.retryable.label("content_retryable"),
            )
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .where(sources.c.source == source, sources.c.purpose == purpose)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return SourceState(**row) if row is not None else None

    async def record_source(
        self,
        facts: SourceFacts,
        *,
        run_id: int,
        status: str = "ok",
        error: str | None = None,
        content_id: int | None = None,
        retryable: bool = False,
    ) -> int:
        """Insert or update the (source, purpose) row; return its id."""
        now = self._clock()
        values: dict[str, Any] = {
            "kind": facts.kind,
            "written": facts.written,
            "path": facts.path,
            "filename": facts.filename,
            "retryable": int(retryable),
            "size": facts.size,
            "mtime_ns": facts.mtime_ns,
            "sha256": facts.sha256,
            "line": facts.line,
            "external_id": facts.external_id,
            "extra": json.dumps(dict(facts.extra), ensure_ascii=False) if facts.extra else None,
            "status": status,
            "error": error,
            "content_id": content_id,
            "run_id": run_id,
            "updated_at": now,
        }
        stmt = sqlite_insert(sources).values(
            source=facts.source, purpose=facts.purpose, created_at=now, **values
        )
        stmt = stmt.on_conflict_do_update(index_elements=["source", "purpose"], set_=values)
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
            source_id = await conn.scalar(
                select(sources.c.id).where(
                    sources.c.source == facts.source, sources.c.purpose == facts.purpose
                )
            )
            if facts.purpose:
                # A source that now has a purpose drops its earlier "no purpose" failure.
                await conn.execute(
                    sources.delete().where(
                        sources.c.source == facts.source, sources.c.purpose == ""
                    )
                )
        return int(source_id)  # type: ignore[arg-type]

    # --- contents ---------------------------------------------------------------------------

    async def content_for(self, sha256: str, purpose: str, size: int) -> tuple[int, str, bool]:
        """Get or create the content row for these bytes and purpose: (id, status, retryable)."""
        now = self._clock()
        stmt = (
            sqlite_insert(contents)
            .values(
                sha256=sha256,
                purpose=purpose,
                size=size,
                status="pending",
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["sha256", "purpose"])
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)
            row = (
                await conn.execute(
                    select(contents.c.id, contents.c.status, contents.c.retryable).where(
                        contents.c.sha256 == sha256, contents.c.purpose == purpose
                    )
                )
            ).one()
        return int(row.id), str(row.status), bool(row.retryable)

    async def content_status_of(self, sha256: str, purpose: str) -> str | None:
        """Status of these bytes for this purpose, None if never seen. Reads only."""
        query = select(contents.c.status).where(
            contents.c.sha256 == sha256, contents.c.purpose == purpose
        )
        async with self.engine.connect() as conn:
            value = await conn.scalar(query)
        return None if value is None else str(value)

    async def mark_attempt(self, content_id: int) -> int:
        """Count an attempt before it is sent; return the new attempt count."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(contents)
                .where(contents.c.id == content_id)
                .values(attempts=contents.c.attempts + 1, updated_at=self._clock())
            )
            value = await conn.scalar(
                select(contents.c.attempts).where(contents.c.id == content_id)
            )
        return int(value or 0)

    async def mark_done(
        self,
        content_id: int,
        *,
        voice_id: str | None,
        instrumental_id: str | None,
        trace_id: str | None,
    ) -> None:
        now = self._clock()
        await self._set_content(
            content_id,
            status="done",
            error=None,
            retryable=0,
            voice_id=voice_id,
            instrumental_id=instrumental_id,
            trace_id=trace_id,
            done_at=now,
        )

    async def mark_failed(self, content_id: int, error: str, *, trace_id: str | None) -> None:
        await self._set_content(
            content_id, status="failed", retryable=0, error=error, trace_id=trace_id
        )

    async def mark_retryable(self, content_id: int, error: str) -> None:
        """Out of attempts on transient errors: failed, but the next plain run takes it again."""
        await self._set_content(content_id, status="failed", retryable=1, error=error)

    async def reset_content(self, content_id: int) -> None:
        """A failed content about to be tried again starts from pending."""
        await self._set_content(content_id, status="pending", retryable=0)

    async def _set_content(self, content_id: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(contents)
                .where(contents.c.id == content_id)
                .values(updated_at=self._clock(), **values)
            )

    # --- reporting --------------------------------------------------------------------------

    async def counts(self) -> list[tuple[str, str, int]]:
        """(purpose, status, sources) for every source, with the status it shows in exports."""
        status = _effective_status()
        query = (
            select(sources.c.purpose, status.label("status"), func.count())
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .group_by(sources.c.purpose, status)
            .order_by(sources.c.purpose, status)
        )
        async with self.engine.connect() as conn:
            return [(str(p), str(s), int(n)) for p, s, n in await conn.execute(query)]

    async def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        error = func.coalesce(sources.c.error, contents.c.error)
        query = (
            select(error, func.count())
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .where(_effective_status() != "done", error.is_not(None))
            .group_by(error)
            .order_by(func.count().desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [(str(e), int(n)) for e, n in await conn.execute(query)]

    async def export_rows(self, status: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """One record per (source, purpose), streamed in source order."""
        effective = _effective_status().label("status")
        query = (
            select(
                func.coalesce(sources.c.written, sources.c.source).label("source"),
                sources.c.purpose,
                sources.c.sha256,
                effective,
                contents.c.voice_id,
                contents.c.instrumental_id,
                contents.c.trace_id,
                func.coalesce(sources.c.error, contents.c.error).label("error"),
                func.coalesce(contents.c.attempts, 0).label("attempts"),
                case(
                    (sources.c.status == "failed", sources.c.retryable),
                    else_=func.coalesce(contents.c.retryable, 0),
                ).label("retryable"),
                sources.c.size,
                sources.c.kind,
                sources.c.filename,
                sources.c.line,
                sources.c.external_id,
                sources.c.extra,
            )
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .order_by(sources.c.id)
        )
        if status is not None:
            query = query.where(_effective_status() == status)
        async with self.engine.connect() as conn:
            result = await conn.stream(query)
            async for row in result.mappings():
                record = dict(row)
                extra = record.pop("extra")
                record["extra"] = json.loads(extra) if extra else {}
                record["retryable"] = bool(record["retryable"])
                yield record


def _effective_status() -> Any:
    return case(
        (sources.c.status != "ok", sources.c.status),
        (contents.c.status.is_(None), "pending"),
        else_=contents.c.status,
    )
