"""The writer's statements in SQLAlchemy Core, for a ledger on a database server: run on the
async engine's connection through `run_sync` (see `statements.py` for how a batch applies them,
and `sqlite_sql.py` for the same statements written out for an SQLite file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from pipeline.core.states import ContentStatus, SourceStatus
from pipeline.ledger.claims import Claims
from pipeline.ledger.models import contents, runs, sources
from pipeline.ledger.queries import db_epoch, dialect_insert
from pipeline.ledger.rows import SOURCE_COLUMNS
from pipeline.ledger.statements import OpKind, Statements


class CoreStatements(Statements[Connection]):
    """On a SQLAlchemy connection (a server database, through the async engine's `run_sync`)."""

    def __init__(self, dialect: str, claims: Claims | None) -> None:
        super().__init__(claims)
        upsert = dialect_insert(dialect, sources)
        self.source_upsert = upsert.on_conflict_do_update(
            index_elements=["source", "purpose"],
            set_={name: upsert.excluded[name] for name in SOURCE_COLUMNS},
        )
        self.drop_no_purpose = delete(sources).where(
            sources.c.source == bindparam("b_source"), sources.c.purpose == ""
        )
        # Get or create, then read back: two statements, both compiled once and cached (an
        # executemany INSERT ... RETURNING is compiled again at every call).
        self.content_insert = dialect_insert(dialect, contents).on_conflict_do_nothing(
            index_elements=["sha256", "purpose"]
        )
        # FOR SHARE (on PostgreSQL; SQLite has one writer): the status read here is copied onto
        # the source, so no other run may change it until this commit, and a run that changed
        # it first is waited for. Otherwise a `done` committed in between would be missed by
        # the copy, and the source would show pending for good.
        self.content_lookup = (
            select(
                contents.c.sha256, contents.c.purpose, contents.c.id, contents.c.status,
                contents.c.retryable,
            )
            .where(contents.c.sha256.in_(bindparam("shas", expanding=True)))
            .with_for_update(read=True)
        )  # fmt: skip
        by_id = contents.c.id == bindparam("c_id")
        settled = {"claimed_by": None, "claimed_until": None}
        self.mirror = (
            update(sources)
            .where(sources.c.content_id == bindparam("c_id"))
            .values(content_status=bindparam("m_status"))
        )
        self.simple = {
            OpKind.RESET: update(contents)
            .where(by_id)
            .values(status=ContentStatus.PENDING, retryable=0),
            OpKind.ATTEMPT: update(contents).where(by_id).values(attempts=contents.c.attempts + 1),
            OpKind.DONE: update(contents)
            .where(by_id)
            .values(status=ContentStatus.DONE, error=None, retryable=0, **settled),
            OpKind.FAILED: update(contents)
            .where(by_id)
            .values(status=ContentStatus.FAILED, **settled),
            OpKind.LEAVE: update(sources)
            .where(sources.c.source == bindparam("b_source"))
            .where(sources.c.purpose == bindparam("b_purpose"))
            .values(status=SourceStatus.FAILED, retryable=1, sha256=None, size=None),
            OpKind.HEARTBEAT: update(runs)
            .where(runs.c.id == bindparam("run_id"))
            .values(heartbeat_at=db_epoch(dialect)),
        }

    def many(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(statement, rows)

    def lookup(self, conn: Connection, shas: list[str]) -> Iterable[Sequence[Any]]:
        return conn.execute(self.content_lookup, {"shas": shas})

    def call(self, conn: Connection, work: Callable[[Connection], Any]) -> Any:
        return work(conn)
