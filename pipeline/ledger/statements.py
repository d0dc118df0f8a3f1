"""The statements of one commit of the ledger's writer: each kind of change runs once per batch
with all its rows, in a fixed order of kinds, and of rows within a kind.

They run on a synchronous connection: on SQLite in the writer's own thread, so a whole commit
is one hand-off to that thread (not one per statement), with the standard `sqlite3` module
(`SqliteStatements`: these same statements compiled once to SQLite's SQL, which spares the
writer's thread SQLAlchemy's work per statement); on PostgreSQL through the async engine's
`run_sync`.

Rows are sorted by their key: two runs writing the same rows (on a shared ledger) then lock them
in the same order, which keeps deadlocks between them rare; a deadlock is retried whole. The
source claims queued for one commit go first, as one claim (`Claims.sources`), which never
waits for another run's row lock: claims taken one statement each, in the order each run's
workers asked, deadlocked three runs walking one folder every few seconds (and PostgreSQL
takes its `deadlock_timeout`, 1 s, to see each one).

A link gets or creates its content and reads it back (INSERT ... ON CONFLICT ... RETURNING would
do it in one, but SQLAlchemy compiles an executemany RETURNING afresh each time, which costs more
than a second, cached, statement).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import bindparam, column, delete, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from pipeline.core.states import ContentStatus, SourceStatus
from pipeline.ledger.claims import Claims
from pipeline.ledger.models import contents, runs, sources
from pipeline.ledger.queries import db_epoch, dialect_insert
from pipeline.ledger.rows import SOURCE_COLUMNS, WRITTEN


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """A source's content, after linking: its id and what the ledger says of it. `claimed` is
    False when another live run holds it (on a shared ledger): that run is uploading it."""

    content_id: int
    status: str  # ContentStatus
    retryable: bool
    claimed: bool = True


class OpKind(enum.StrEnum):
    """What one change queued with the writer does."""

    CLAIM = "claim"  # claim a source (a shared ledger): its row, inserted if new
    SOURCE = "source"  # insert or update a source's row
    LINK = "link"  # get or create a source's content, and record the source against it
    LEAVE = "leave"  # a source's bytes changed: forget its hash, leave it for the next run
    RESET = "reset"  # a failed content tried again: pending
    ATTEMPT = "attempt"  # count an attempt before its request goes out
    DONE = "done"  # the service took the content: its ids
    FAILED = "failed"  # the content failed (for good, or left for the next run)
    HEARTBEAT = "heartbeat"  # the run is alive, with its figures so far (a ledger of its own)
    CALL = "call"  # run a function inside the commit (the claims of a shared ledger)
    FLUSH = "flush"  # nothing: its future tells when everything before it is committed


@dataclasses.dataclass(slots=True)
class Op:
    kind: OpKind
    params: dict[str, Any]
    future: asyncio.Future[Any] | None = None
    work: Callable[[Connection], Any] | None = None


# One UPDATE each, in this order.
_SIMPLE = (
    OpKind.RESET, OpKind.ATTEMPT, OpKind.DONE, OpKind.FAILED, OpKind.LEAVE, OpKind.HEARTBEAT
)  # fmt: skip
_MIRRORED = {
    OpKind.RESET: ContentStatus.PENDING,
    OpKind.DONE: ContentStatus.DONE,
    OpKind.FAILED: ContentStatus.FAILED,
}


C = TypeVar("C")  # the connection a commit runs on


class Statements(Generic[C]):
    """The statements, and how a batch applies them; on a SQLAlchemy connection (`CoreStatements`)
    or a plain `sqlite3` one (`SqliteStatements`)."""

    def __init__(self, dialect: str, claims: Claims | None) -> None:
        self.claims = claims
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

    # What a back end provides: run a statement for many rows, read the contents of these
    # shas, and run a function inside the commit.
    def many(self, conn: C, statement: Any, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def lookup(self, conn: C, shas: list[str]) -> Iterable[Sequence[Any]]:
        raise NotImplementedError

    def call(self, conn: C, work: Callable[[Connection], Any]) -> Any:
        raise NotImplementedError

    def apply(self, conn: C, batch: Sequence[Op]) -> list[Any]:
        """Apply a batch in one transaction (the caller's); each op's result, in order."""
        claims = [op.params for op in batch if op.kind is OpKind.CLAIM]
        claimed = self.call(conn, lambda c: self._claim(c, claims)) if claims else set()
        called = {id(op): self.call(conn, op.work) for op in batch if op.work is not None}
        links = self._links(conn, [op for op in batch if op.kind is OpKind.LINK])
        for op in batch:
            if op.kind is OpKind.LINK:
                link = links[(op.params["c_sha256"], op.params["purpose"])]
                op.params.update(content_id=link.content_id, content_status=link.status)
        recorded = [o.params for o in batch if o.kind in (OpKind.SOURCE, OpKind.LINK)]
        upserts = sorted(recorded, key=lambda p: (p["source"], p["purpose"]))
        self.many(conn, self.source_upsert, [{k: p[k] for k in WRITTEN} for p in upserts])
        named = [{"b_source": p["source"]} for p in upserts if p.get("c_replaces_no_purpose")]
        self.many(conn, self.drop_no_purpose, named)
        for kind in _SIMPLE:
            rows = sorted((o.params for o in batch if o.kind == kind), key=_row_key)
            self.many(conn, self.simple[kind], rows)
            if kind in _MIRRORED and rows:
                mirrored = [{"c_id": r["c_id"], "m_status": _MIRRORED[kind]} for r in rows]
                self.many(conn, self.mirror, mirrored)
        return [_result(o, links, called, claimed) for o in batch]

    def _claim(self, conn: Connection, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        assert self.claims is not None, "claims are for a shared ledger"
        return self.claims.sources(conn, rows)

    def _links(self, conn: C, ops: Sequence[Op]) -> dict[tuple[str, str], Link]:
        """Get or create each content, and read it back."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for op in ops:
            p = op.params
            rows[(p["c_sha256"], p["purpose"])] = {
                "sha256": p["c_sha256"],
                "purpose": p["purpose"],
                "size": p["c_size"],
                "converted_from": p["c_converted_from"],
                "sent_sha256": p["c_sent_sha256"],
                "status": ContentStatus.PENDING,
                "attempts": 0,
                "created_at": p["created_at"],
                "updated_at": p["updated_at"],
            }
        if not rows:
            return {}
        self.many(conn, self.content_insert, [rows[key] for key in sorted(rows)])
        shas = sorted({sha for sha, _ in rows})
        found = [row for row in self.lookup(conn, shas) if (row[0], row[1]) in rows]
        ours = self._claim_pending(conn, found)
        return {
            (sha, purpose): Link(cid, status, bool(retry), claimed=ours is None or cid in ours)
            for sha, purpose, cid, status, retry in found
        }

    def _claim_pending(self, conn: C, found: Sequence[Any]) -> set[int] | None:
        """On a shared ledger, claim the pending contents just linked; None: no claims here."""
        claims = self.claims
        if claims is None:
            return None
        pending = [row[2] for row in found if row[3] == ContentStatus.PENDING]
        result: set[int] = self.call(conn, lambda c: claims.contents(c, pending))
        return result


class CoreStatements(Statements[Connection]):
    """On a SQLAlchemy connection (a server database, through the async engine's `run_sync`)."""

    def many(self, conn: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(statement, rows)

    def lookup(self, conn: Connection, shas: list[str]) -> Iterable[Sequence[Any]]:
        return conn.execute(self.content_lookup, {"shas": shas})

    def call(self, conn: Connection, work: Callable[[Connection], Any]) -> Any:
        return work(conn)


class SqliteStatements(Statements[sqlite3.Connection]):
    """On a plain `sqlite3` connection (an SQLite file, in the writer's thread): each statement
    compiled once to SQLite's SQL, for the keys its rows have, and run with `executemany`. The
    values a statement sets itself (a status, a count) become defaults of each row. (SQLAlchemy's
    only bind processing on SQLite, float() for Float columns, is what the columns' REAL affinity
    does anyway.) Functions to run inside a commit take a SQLAlchemy connection: they are for a
    shared ledger's claims, which SQLite never has."""

    def __init__(self, dialect: str, claims: Claims | None) -> None:
        assert dialect == "sqlite" and claims is None
        super().__init__(dialect, claims)
        self._dialect = sqlite.dialect(paramstyle="named")
        self._compiled: dict[tuple[int, tuple[str, ...]], tuple[str, dict[str, Any]]] = {}
        # The lookup reads a JSON list of shas (one parameter, whatever the batch's size).
        listed: Any = select(column("value")).select_from(func.json_each(bindparam("shas")))
        self.content_lookup = select(*self.content_lookup.selected_columns).where(
            contents.c.sha256.in_(listed)
        )

    def many(self, conn: sqlite3.Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            sql, defaults = self._sql(statement, tuple(rows[0]))
            conn.executemany(sql, [defaults | row for row in rows] if defaults else rows)

    def lookup(self, conn: sqlite3.Connection, shas: list[str]) -> Iterable[Sequence[Any]]:
        sql, _ = self._sql(self.content_lookup, ())
        return conn.execute(sql, {"shas": json.dumps(shas)}).fetchall()

    def call(self, conn: sqlite3.Connection, work: Callable[[Connection], Any]) -> Any:
        raise TypeError("an SQLite ledger's writer runs no functions inside its commits")

    def _sql(self, statement: Any, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """SQLite's SQL for `statement` run with rows of these keys, and the values it sets
        itself; compiled once per statement and keys."""
        found = self._compiled.get((id(statement), keys))
        if found is None:
            compiled = statement.compile(
                dialect=self._dialect, column_keys=list(keys), for_executemany=bool(keys)
            )
            defaults = {
                name: bind.value for bind, name in compiled.bind_names.items() if not bind.required
            }
            found = self._compiled[(id(statement), keys)] = (compiled.string, defaults)
        return found


def _row_key(params: dict[str, Any]) -> tuple[int, str, str]:
    return (params.get("c_id", 0), params.get("b_source", ""), params.get("b_purpose", ""))


def _result(
    op: Op,
    links: dict[tuple[str, str], Link],
    called: dict[int, Any],
    claimed: set[tuple[str, str]],
) -> Any:
    if op.kind is OpKind.CLAIM:
        return (op.params["source"], op.params["purpose"]) in claimed
    if op.kind is OpKind.LINK:
        return links[(op.params["c_sha256"], op.params["purpose"])]
    return called.get(id(op))
