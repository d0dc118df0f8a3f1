"""The ledger's queries, in SQLAlchemy Core only (no engine, no ORM): shared by the async
repository (`store.py`), the writer's Core statements, `export` and `status` on a server
database. On an SQLite file, a run and `status` run this SQL compiled to text, written out in
`sqlite_sql.py` and `plain.py` (tests compile these and compare), and need no SQLAlchemy at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Select

from pipeline.core.records import EXPORT_FIELDS
from pipeline.core.states import ContentStatus, RunStatus, SourceStatus
from pipeline.ledger.models import contents, runs, sources
from pipeline.ledger.plain import EXPORT_COLUMNS as EXPORT_COLUMNS
from pipeline.ledger.plain import shown_counts as shown_counts
from pipeline.ledger.plain import top_errors as top_errors

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql


def db_epoch(dialect: str) -> ColumnElement[float]:
    """The database's clock, in epoch seconds (several hosts' clocks need not agree)."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return cast((func.julianday("now") - 2440587.5) * 86400.0, Float)


def live_runs(now: ColumnElement[float]) -> ColumnElement[bool]:
    """Runs still going: marked running, with a heartbeat younger than their lease."""
    return and_(
        runs.c.status == RunStatus.RUNNING,
        runs.c.heartbeat_at.is_not(None),
        runs.c.heartbeat_at + func.coalesce(runs.c.lease, 60.0) >= now,
    )


def dialect_insert(dialect: str, table: Any) -> sqlite.Insert | postgresql.Insert:
    """INSERT with ON CONFLICT support for this dialect (the two share one API)."""
    if dialect == "postgresql":
        # Imported here: loading the PostgreSQL dialect costs an SQLite run 20 ms of start-up.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)


def json_listed(name: str) -> Select[Any]:
    """The values of a JSON list given as parameter `name` (SQLite's json_each): one parameter
    however long the list, where an expanding IN takes one per value."""
    listed: Any = select(column("value")).select_from(func.json_each(bindparam(name)))
    return listed  # type: ignore[no-any-return]


STATE_COLUMNS = select(
    sources.c.source,
    sources.c.purpose,
    sources.c.id,
    sources.c.size,
    sources.c.mtime_ns,
    sources.c.sha256,
    sources.c.status,
    sources.c.retryable,
    sources.c.error,
    sources.c.content_id,
    contents.c.status,
    contents.c.retryable,
    sources.c.etag,
).select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
STATE_QUERY = STATE_COLUMNS.where(sources.c.source.in_(bindparam("keys", expanding=True)))
CONTENT_OF_QUERY = select(contents.c.status, contents.c.retryable).where(
    contents.c.sha256 == bindparam("sha256"), contents.c.purpose == bindparam("purpose")
)
FINISH_RUN = update(runs).where(runs.c.id == bindparam("run_id"))  # with the columns it sets


def start_run(dialect: str) -> Any:
    """A run's row, its heartbeat by the database's clock (with the other columns)."""
    return runs.insert().values(heartbeat_at=db_epoch(dialect))


def abandoned_runs(dialect: str) -> Any:
    """Mark crashed the runs that died without finishing: on SQLite, every run still marked
    running once we hold the ledger; on a shared ledger, those whose heartbeat stopped."""
    ended = runs.c.status == RunStatus.RUNNING
    if dialect == "postgresql":
        ended = and_(ended, ~live_runs(db_epoch(dialect)))
    return update(runs).where(ended).values(status=RunStatus.CRASHED)


def export_query() -> Any:
    return (
        select(
            func.coalesce(sources.c.written, sources.c.source).label("source"),
            sources.c.purpose,
            sources.c.sha256,
            effective_status().label("status"),
            contents.c.voice_id,
            contents.c.instrumental_id,
            func.coalesce(sources.c.error, contents.c.error).label("error"),
            func.coalesce(contents.c.attempts, 0).label("attempts"),
            case(
                (sources.c.status == SourceStatus.FAILED, sources.c.retryable),
                else_=func.coalesce(contents.c.retryable, 0),
            ).label("retryable"),
            contents.c.trace_id,
            sources.c.size,
            sources.c.kind,
            sources.c.filename,
            sources.c.line,
            sources.c.external_id,
            contents.c.converted_from,
            # What is (or would be) sent: the decoded WAV's bytes, else the source's own.
            func.coalesce(contents.c.sent_sha256, contents.c.sha256).label("sent_sha256"),
            sources.c.extra,
        )
        .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
        .order_by(sources.c.id)
    )


def json_lines_query() -> Any:
    """`export_query`, each row as one JSON object made by SQLite (the same fields, in the same
    order, `retryable` a boolean, `extra` only where there is one)."""
    base = export_query()
    columns = {column.name: column for column in base.selected_columns}
    pairs: list[Any] = []
    for name in EXPORT_FIELDS:
        value = columns[name]
        if name == "retryable":
            value = func.json(case((value != 0, "true"), else_="false"))
        pairs += [literal(name), value]
    record = func.json_object(*pairs)
    extra = columns["extra"]
    line = case((extra.is_(None), record), else_=func.json_set(record, "$.extra", func.json(extra)))
    return base.with_only_columns(line)


def effective_status() -> Any:
    """What a source shows: its own failure, else its content's status (the copy kept on the
    source row, so no join is needed), else pending."""
    return case(
        (sources.c.status != SourceStatus.OK, sources.c.status),
        (sources.c.content_status.is_(None), ContentStatus.PENDING),
        else_=sources.c.content_status,
    )


def counts_query() -> Select[Any]:
    """Sources by (status, content status, purpose): one pass over `ix_sources_state`."""
    return select(
        sources.c.status, sources.c.content_status, sources.c.purpose, func.count()
    ).group_by(sources.c.status, sources.c.content_status, sources.c.purpose)


def converted_query() -> Select[Any]:
    """Contents decoded to WAV, by (what from, status): from `ix_contents_converted` alone."""
    return (
        select(contents.c.converted_from, contents.c.status, func.count())
        .where(contents.c.converted_from.is_not(None))
        .group_by(contents.c.converted_from, contents.c.status)
    )


def error_queries() -> tuple[Select[Any], Select[Any]]:
    """Reasons of sources not done, counted: their own failures, and their contents'."""
    own = (
        select(sources.c.error, func.count())
        .where(sources.c.status == SourceStatus.FAILED, sources.c.error.is_not(None))
        .group_by(sources.c.error)
    )
    content = (
        select(contents.c.error, func.count())
        .select_from(sources.join(contents, sources.c.content_id == contents.c.id))
        .where(
            sources.c.status == SourceStatus.OK,
            sources.c.content_status.in_([ContentStatus.FAILED, ContentStatus.PENDING]),
            contents.c.error.is_not(None),
        )
        .group_by(contents.c.error)
    )
    return own, content


def last_runs_query(limit: int) -> Select[Any]:
    return select(runs).order_by(runs.c.id.desc()).limit(limit)


def running_query() -> Select[Any]:
    return select(runs).where(runs.c.status == RunStatus.RUNNING).order_by(runs.c.id)
