"""Claims with leases: how several runs share one PostgreSQL ledger without a coordinator.

    a run claims a source before it hashes or fetches it, and a content before it uploads it:
        claimed_by = its run id, claimed_until = now + lease   (now: the database's clock)
    a claim is taken only if it is free: nobody's, its own, or expired;
    the run's heartbeat renews all its claims every lease / 4 seconds, and records its figures;
    done or failed clears the content's claim; linking clears the source's;
    a run that dies stops renewing: its claims expire, and a live run takes the work over
    (`take_over`: SELECT ... FOR UPDATE SKIP LOCKED, as PostgreSQL job queues do).

Every statement is a short transaction of the writer's (nothing is held across an upload or a
download); the database's row locks serialise two runs claiming the same row, and the loser sees
the winner's claim. The clock is the database's, so the hosts' clocks may disagree freely.
On SQLite (one run per ledger, held by a file lock) none of this is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, tuple_, update
from sqlalchemy.engine import Connection, Row

from pipeline.core.states import ContentStatus, SourceStatus
from pipeline.ledger.models import contents, runs, sources
from pipeline.ledger.queries import db_epoch, dialect_insert, live_runs


@dataclasses.dataclass(frozen=True)
class Claims:
    dialect: str
    run_id: int
    lease: float

    @property
    def now(self) -> ColumnElement[float]:
        return db_epoch(self.dialect)

    @property
    def until(self) -> ColumnElement[float]:
        return self.now + literal(self.lease)

    def _free(self, table: Any) -> ColumnElement[bool]:
        """Claimable by this run: nobody's, already its own, or expired."""
        return or_(self._unheld(table), table.c.claimed_by == self.run_id)

    def _unheld(self, table: Any) -> ColumnElement[bool]:
        """Held by no live run: nobody's, or expired (a live run's claims never expire)."""
        return or_(table.c.claimed_by.is_(None), table.c.claimed_until < self.now)

    def sources(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
        """Claim these sources (inserting the new ones); the (source, purpose) keys now ours.

        It never waits for another run's row lock, so it cannot close a deadlock with a run
        whose commit holds rows this one wants: a free row locked at this moment is left to
        whoever holds it (if nobody ends up claiming it, it comes back through `take_over`).
        Only the keys not in the table yet are inserted, in key order, so two runs inserting
        the same new keys wait for each other in the same order."""
        if not rows:
            return set()
        ordered = sorted(rows, key=lambda r: (r["source"], r["purpose"]))
        keys = [(r["source"], r["purpose"]) for r in ordered]
        key = tuple_(sources.c.source, sources.c.purpose)
        existing = {
            (r[0], r[1])
            for r in conn.execute(select(sources.c.source, sources.c.purpose).where(key.in_(keys)))
        }
        ours: set[tuple[str, str]] = set()
        if existing:
            free = (
                select(sources.c.id)
                .where(key.in_(sorted(existing)), self._free(sources))
                .order_by(sources.c.source, sources.c.purpose)
                .with_for_update(skip_locked=True)
            )
            taken = conn.execute(
                update(sources)
                .where(sources.c.id.in_(free.scalar_subquery()))
                .values(claimed_by=self.run_id, claimed_until=self.until)
                .returning(sources.c.source, sources.c.purpose)
            )
            ours.update((r[0], r[1]) for r in taken)
        new = [
            r | {"claimed_by": self.run_id, "claimed_until": self.until}
            for r in ordered
            if (r["source"], r["purpose"]) not in existing
        ]
        if new:
            insert = dialect_insert(self.dialect, sources).values(new)
            statement = insert.on_conflict_do_nothing(
                index_elements=["source", "purpose"]
            ).returning(sources.c.source, sources.c.purpose)
            ours.update((r[0], r[1]) for r in conn.execute(statement))
        return ours

    def contents(self, conn: Connection, ids: Iterable[int]) -> set[int]:
        """Claim these contents for upload where they are pending and free; the ids now ours."""
        wanted = sorted(set(ids))
        if not wanted:
            return set()
        free = (
            select(contents.c.id)
            .where(contents.c.id.in_(wanted), contents.c.status == ContentStatus.PENDING)
            .where(self._free(contents))
            .order_by(contents.c.id)
            .with_for_update(skip_locked=True)  # never waits: see `sources`
        )
        statement = (
            update(contents)
            .where(contents.c.id.in_(free.scalar_subquery()))
            .values(claimed_by=self.run_id, claimed_until=self.until)
            .returning(contents.c.id)
        )
        return {row[0] for row in conn.execute(statement)}

    def reset(self, conn: Connection, content_id: int) -> bool:
        """A failed content tried again: pending and ours, unless another run got there first."""
        statement = (
            update(contents)
            .where(contents.c.id == content_id, contents.c.status == ContentStatus.FAILED)
            .where(self._free(contents))
            .values(
                status=ContentStatus.PENDING,
                retryable=0,
                claimed_by=self.run_id,
                claimed_until=self.until,
            )
            .returning(contents.c.id)
        )
        if (conn.execute(statement)).first() is None:
            return False
        conn.execute(
            update(sources)
            .where(sources.c.content_id == content_id)
            .values(content_status=ContentStatus.PENDING)
        )
        return True

    def heartbeat(self, conn: Connection, summary: str) -> int:
        """Renew every claim of ours, say we are alive (with our figures so far); return how
        many runs are live on this ledger, this one included."""
        heartbeat(conn, self.dialect, self.run_id, summary, lease=self.lease)
        for table in (sources, contents):
            conn.execute(
                update(table)
                .where(table.c.claimed_by == self.run_id)
                .values(claimed_until=self.until)
            )
        live = select(func.count()).select_from(runs).where(live_runs(self.now))
        return int(conn.scalar(live) or 1)

    def release(self, conn: Connection) -> None:
        """This run is ending: its claims are free at once, not only when they expire."""
        for table in (sources, contents):
            conn.execute(
                update(table)
                .where(table.c.claimed_by == self.run_id)
                .values(claimed_by=None, claimed_until=None)
            )

    def take_over(
        self, conn: Connection, origins: Sequence[str], skip: Iterable[int], limit: int
    ) -> list[Row[Any]]:
        """Claim pending sources from these origins that nobody live holds (their run died,
        or they were never finished): the rows, to be prepared again."""
        chosen = (
            select(sources.c.id)
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .where(_pending_in(origins), self._unheld(sources), self._unheld_content())
            .where(sources.c.id.not_in(list(skip)))
            .order_by(sources.c.id)
            .limit(limit)
            .with_for_update(of=sources, skip_locked=True)
        )
        statement = (
            update(sources)
            .where(sources.c.id.in_(chosen.scalar_subquery()))
            .values(claimed_by=self.run_id, claimed_until=self.until)
            .returning(*sources.c)
        )
        return list(conn.execute(statement))

    def _unheld_content(self) -> ColumnElement[bool]:
        return or_(contents.c.id.is_(None), self._unheld(contents))

    def held_elsewhere(self, conn: Connection, origins: Sequence[str]) -> bool:
        """Whether another live run holds a pending source from these origins (or uploads its
        content): work that may yet come back to us if that run dies."""
        other = and_(sources.c.claimed_by != self.run_id, sources.c.claimed_until >= self.now)
        other_content = and_(
            contents.c.claimed_by != self.run_id, contents.c.claimed_until >= self.now
        )
        held = (
            select(sources.c.id)
            .select_from(sources.outerjoin(contents, sources.c.content_id == contents.c.id))
            .where(_pending_in(origins), or_(other, other_content))
        )
        return bool(conn.scalar(select(exists(held))))  # the first such row will do


def heartbeat(
    conn: Connection, dialect: str, run_id: int, summary: str, *, lease: float | None = None
) -> None:
    """The run is alive, by the database's clock, with its figures so far (`summary`, JSON);
    `lease` when its claims' length is to be recorded with it."""
    values: dict[str, Any] = {"heartbeat_at": db_epoch(dialect), "summary": summary}
    if lease is not None:
        values["lease"] = lease
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def _pending_in(origins: Sequence[str]) -> ColumnElement[bool]:
    return and_(
        sources.c.origin.in_(list(origins)),
        sources.c.status == SourceStatus.OK,
        or_(contents.c.id.is_(None), contents.c.status == ContentStatus.PENDING),
    )
