"""The statements of one commit of the ledger's writer: each kind of change runs once per batch
with all its rows, in a fixed order of kinds, and of rows within a kind.

They run on a synchronous connection: on SQLite in the writer's own thread, so a whole commit
is one hand-off to that thread (not one per statement), with the standard `sqlite3` module
(`SqliteStatements`: the statements written out for SQLite, so a run on an SQLite file loads no
SQLAlchemy); on PostgreSQL through the async engine's `run_sync`, in SQLAlchemy Core
(`core_statements.py`).

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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline.core.states import ContentStatus
from pipeline.ledger import sqlite_sql as sql
from pipeline.ledger.rows import WRITTEN
from pipeline.ledger.sqlite_sql import Sql

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipeline.ledger.claims import Claims


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
    """The statements, and how a batch applies them; in SQLAlchemy Core on a SQLAlchemy
    connection (`core_statements.CoreStatements`, a server database) or written out for SQLite
    on a plain `sqlite3` one (`SqliteStatements`). A back end sets each statement below."""

    source_upsert: Any  # insert or update a source's row (every column but its id)
    drop_no_purpose: Any  # forget the row of a source recorded earlier with no purpose
    content_insert: Any  # a content, unless it exists
    content_lookup: Any  # contents by sha256
    mirror: Any  # copy a content's status onto its sources
    simple: dict[OpKind, Any]  # one UPDATE for each kind of `_SIMPLE`

    def __init__(self, claims: Claims | None) -> None:
        self.claims = claims

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


class SqliteStatements(Statements[sqlite3.Connection]):
    """On a plain `sqlite3` connection (an SQLite file, in the writer's thread): the statements
    written out for SQLite (`sqlite_sql.py`), each run with `executemany`; the values a
    statement sets itself (a status, a count) are bound with each row. (SQLAlchemy's only bind
    processing on SQLite, float() for Float columns, is what the columns' REAL affinity does
    anyway.) Functions to run inside a commit take a SQLAlchemy connection: they are for a
    shared ledger's claims, which SQLite never has."""

    def __init__(self) -> None:
        super().__init__(None)
        self.source_upsert = sql.SOURCE_UPSERT
        self.drop_no_purpose = sql.DROP_NO_PURPOSE
        self.content_insert = sql.CONTENT_INSERT
        self.content_lookup = sql.CONTENT_LOOKUP
        self.mirror = sql.MIRROR
        self.simple = {kind: sql.SIMPLE[kind] for kind in _SIMPLE}

    def many(self, conn: sqlite3.Connection, statement: Sql, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if rows[0].keys() != set(statement.keys):  # its SQL sets what these keys name
            raise ValueError(f"rows of {sorted(rows[0])} for a statement of {statement.keys}")
        defaults = statement.defaults
        conn.executemany(
            statement.text, [{**defaults, **row} for row in rows] if defaults else rows
        )

    def lookup(self, conn: sqlite3.Connection, shas: list[str]) -> Iterable[Sequence[Any]]:
        return conn.execute(self.content_lookup.text, {"shas": json.dumps(shas)}).fetchall()

    def call(self, conn: sqlite3.Connection, work: Callable[[Connection], Any]) -> Any:
        raise TypeError("an SQLite ledger's writer runs no functions inside its commits")


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
