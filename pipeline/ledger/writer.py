"""The ledger's single writer: every state change of every entry, committed in groups.

Tasks hand their changes to `Writer` and go on; one task applies everything that has queued up
in a single transaction, with one `executemany` per kind of change, then commits, then tells the
waiting tasks. A commit takes whatever arrived while the previous one ran (up to GROUP_MAX
changes), so when idle a change is committed at once. When the event loop is busy (one pass
through it takes longer than `Gather.busy_pass`), the writer first waits `Gather.window` for
more: with no wait, a run of small files at full speed made a commit (a hop to the writer's
thread and a transaction) for nearly every change, and those commits cost a third of its CPU.
The wait is skipped when the loop has time to spare because an upload holds its request slot
until its `done` is committed: there, any wait is paid by every request. Changes are applied
in the order they were queued.

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
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.core.errors import LedgerUnreachable, LedgerWriteError
from pipeline.core.records import UploadResult
from pipeline.core.states import SourceStatus
from pipeline.flow.backoff import patience, retrying
from pipeline.ledger.commits import Committer, DatabaseError, ThreadCommitter
from pipeline.ledger.repository import Clock, RunLedger
from pipeline.ledger.rows import SourceFacts, source_row
from pipeline.ledger.statements import Link, Op, OpKind, SqliteStatements
from pipeline.ledger.watch import FileGone, FileWatch

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from pipeline.ledger.claims import Claims

log = logging.getLogger(__name__)
T = TypeVar("T")
OnFailure = Callable[[LedgerWriteError], None]
# Changes in one commit at most. A backlog (a slow disk, a busy machine) would otherwise make
# each commit's parameter lists grow with the run, and the memory they leave behind with them;
# past a few hundred rows a statement's executemany gains nothing per row.
GROUP_MAX = 512


@dataclasses.dataclass(frozen=True)
class Gather:
    """When a commit waits for more changes: `window` seconds, once a pass through the event
    loop has taken longer than `busy_pass` seconds (the loop is busy)."""

    window: float = 0.002
    busy_pass: float = 0.0001


class Writer:
    def __init__(
        self,
        committer: Committer,
        *,
        dialect: str,
        shown: str,
        clock: Clock,
        run_id: int,
        patience: float,
        on_failure: OnFailure = lambda _: None,
        claims: Claims | None = None,
        watch: FileWatch | None = None,
        gather: Gather = Gather(),  # noqa: B008 (frozen)
    ) -> None:
        self._committer = committer
        self._gather = gather
        self._dialect = dialect
        self._shown = shown
        self._clock = clock
        self.run_id = run_id
        self.patience = patience  # seconds a briefly failing database is waited for
        self.on_failure = on_failure
        self.claims = claims  # a shared (PostgreSQL) ledger: claims with leases
        self._watch = watch
        self._ops: list[Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failure: LedgerWriteError | None = None
        self.unreachable = False  # the failure is a server out of reach for too long

    @classmethod
    def for_ledger(
        cls,
        ledger: RunLedger,
        run_id: int,
        *,
        patience: float,
        on_failure: OnFailure = lambda _: None,
        lease: float | None = None,
        gather: Gather = Gather(),  # noqa: B008 (frozen)
    ) -> Writer:
        """The writer of run `run_id` on `ledger`: on an SQLite file, commits in a thread of its
        own and a watch on the file; on a server database, the async engine's connection and,
        with a `lease`, claims (several runs may share the ledger)."""
        claims: Claims | None = None
        path = ledger.location.path
        committer: Committer
        if ledger.dialect == "sqlite" and path is not None and lease is None:
            committer = ThreadCommitter(path, SqliteStatements())
        else:  # SQLAlchemy Core: loaded only for a ledger that is not an SQLite file
            from pipeline.ledger.claims import Claims
            from pipeline.ledger.commits import AsyncCommitter
            from pipeline.ledger.core_statements import CoreStatements

            claims = Claims(ledger.dialect, run_id, lease) if lease is not None else None
            committer = AsyncCommitter(ledger.engine, CoreStatements(ledger.dialect, claims))
        return cls(
            committer,
            dialect=ledger.dialect,
            shown=ledger.location.shown,
            clock=ledger.clock,
            run_id=run_id,
            patience=patience,
            on_failure=on_failure,
            claims=claims,
            watch=FileWatch(path) if path is not None else None,
            gather=gather,
        )

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
            await self._committer.close()

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
        self._submit(Op(OpKind.SOURCE, params))

    async def link(
        self,
        facts: SourceFacts,
        *,
        sha256: str,
        size: int,
        converted_from: str | None = None,
        sent_sha256: str | None = None,
    ) -> Link:
        """Get or create the content for these bytes and purpose, record the source against it.
        A source decoded to WAV says from what, and the WAV's sha256 (recorded on a new
        content)."""
        params = self._row(facts, SourceStatus.OK, None, False, None)
        params.update(
            c_sha256=sha256, c_size=size, c_converted_from=converted_from, c_sent_sha256=sent_sha256
        )
        result: Link = await self._wait(Op(OpKind.LINK, params))
        return result

    def leave_source(self, source: str, purpose: str, reason: str) -> None:
        """The source's bytes changed after it was linked: forget its hash so the next run
        hashes it again, and mark it left for that run. Fire and forget."""
        params = {"b_source": source, "b_purpose": purpose, "error": reason}
        self._submit(Op(OpKind.LEAVE, params | {"updated_at": self._clock()}))

    async def reset(self, content_id: int) -> bool:
        """A failed content about to be tried again starts from pending; False when another
        run (on a shared ledger) got to it first."""
        if self.claims is not None:
            claims = self.claims
            return await self.call(lambda conn: claims.reset(conn, content_id))
        self._submit(Op(OpKind.RESET, {"c_id": content_id, "updated_at": self._clock()}))
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
        claimed: bool = await self._wait(Op(OpKind.CLAIM, row))
        return claimed

    async def call(self, work: Callable[[Connection], T]) -> T:
        """Run `work` inside the next commit (before the other changes queued with it), and
        return what it returns: for the claims of a shared ledger."""
        result: T = await self._wait(Op(OpKind.CALL, {}, work=work))
        return result

    def attempt(self, content_id: int) -> None:
        """Count an attempt before its request is sent. Fire and forget."""
        self._submit(Op(OpKind.ATTEMPT, {"c_id": content_id, "updated_at": self._clock()}))

    async def done(
        self, content_id: int, result: UploadResult, *, sent_sha256: str | None = None
    ) -> None:
        """The service took the content: its ids, and the sha256 of the WAV sent when it was
        decoded (the bytes actually sent, whatever an earlier run recorded)."""
        now = self._clock()
        params = {
            "c_id": content_id,
            "sent_sha256": sent_sha256,
            "voice_id": result.voice_id,
            "instrumental_id": result.instrumental_id,
            "trace_id": result.trace_id,
            "updated_at": now,
            "done_at": now,
        }
        await self._wait(Op(OpKind.DONE, params))

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
        await self._wait(Op(OpKind.FAILED, params))

    async def heartbeat(self, summary: str) -> int:
        """Say the run is alive, with its figures so far (JSON), renewing its claims on a shared
        ledger: how many runs are live on the ledger, this one included (1 on SQLite)."""
        claims = self.claims
        if claims is not None:
            return await self.call(lambda conn: claims.heartbeat(conn, summary))
        await self._wait(Op(OpKind.HEARTBEAT, {"run_id": self.run_id, "summary": summary}))
        return 1

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (a commit under way included)."""
        await self._wait(Op(OpKind.FLUSH, {}))

    @property
    def watching(self) -> bool:
        """The ledger is a file on this host (SQLite)."""
        return self._watch is not None

    # --- the loop -----------------------------------------------------------------------------

    def _submit(self, op: Op) -> None:
        if self.failure is not None:
            raise self.failure
        self._ops.append(op)
        self._wake.set()

    async def _wait(self, op: Op) -> Any:
        op.future = asyncio.get_running_loop().create_future()
        self._submit(op)
        return await op.future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._ops) < GROUP_MAX:
                await self._gathered()
            self._wake.clear()
            batch = self._ops[:GROUP_MAX]
            del self._ops[:GROUP_MAX]
            if self._ops:
                self._wake.set()  # the rest goes in the next commit, at once
            try:
                results = await self._commit_patiently(batch)
                if self._watch is not None:
                    # A flush (the end of a run included) always looks: a run shorter than the
                    # watch interval must not report success for writes into a removed file.
                    self._watch.look(force=any(op.kind is OpKind.FLUSH for op in batch))
            except (DatabaseError, FileGone) as exc:
                self._fail(batch, str(exc))
                return
            except Exception as exc:  # a fault of ours: every waiting change fails, none hangs
                log.debug("the ledger's writer failed", exc_info=True)
                self._fail(batch, f"{type(exc).__name__}: {exc}")
                return
            for op, result in zip(batch, results, strict=True):
                if op.future is not None and not op.future.done():
                    op.future.set_result(result)

    async def _gathered(self) -> None:
        """Wait `Gather.window` for more changes if the event loop is busy (see above)."""
        started = time.monotonic()
        await asyncio.sleep(0)  # one pass through the loop: the callbacks ready now run
        if time.monotonic() - started > self._gather.busy_pass:
            await asyncio.sleep(self._gather.window)

    async def _commit_patiently(self, batch: Sequence[Op]) -> list[Any]:
        """Commit, trying again while the database is only briefly in the way: a deadlock
        with another run (one of the two is rolled back whole), or a server restarting or
        out of reach, for up to `patience` seconds. Every change is safe to apply again."""
        try:
            async for attempt in retrying(
                patience(self.patience),
                sleep=asyncio.sleep,
                retry_on=_passing,
                before_sleep=self._trying_again,
            ):
                with attempt:
                    return await self._committer.commit(batch)
        except DatabaseError as exc:
            self.unreachable = exc.passing  # it passes, but did not pass in time
            raise
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _trying_again(self, error: BaseException, attempt: int, seconds: float) -> None:
        if attempt >= 5 and isinstance(error, DatabaseError):  # a deadlock is over at once
            log.warning("ledger %s: %s; trying again", self._shown, error)

    def _fail(self, batch: Sequence[Op], reason: str) -> None:
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


def _passing(exc: BaseException) -> bool:
    """Whether trying the same commit again can succeed (see `DatabaseError`)."""
    return isinstance(exc, DatabaseError) and exc.passing
