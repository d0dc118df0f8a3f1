"""Step 2 of a run: from entries to upload jobs.

    # 2a. triage, one batch at a time: stat what the crawl has not, look the whole batch up in
    #     the ledger in one query, and decide each entry (`plan.decide`); entries that need no
    #     I/O (done earlier, failed earlier, too young, bad) are counted and recorded here;
    # 2b. prepare, one entry at a time: hash the file (or reuse its recorded hash, or download
    #     the URL), probe the bytes, decode a format the service does not take into a WAV
    #     (`convert.py`), and link the source to its content in the ledger; a content that
    #     still needs sending becomes a `Job`.

State kept here is only for this run: the contents claimed for upload by this run (so the same
bytes reached twice are sent once, and decoded once), and the files already hashed
(`hashes.FileHashes`). Everything else is in the ledger as soon as it is true.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.content.probe import AudioInfo, OtherFormat
from pipeline.core.entry import Entry
from pipeline.core.errors import EntryError, PermanentError, RunFatal, Stopped
from pipeline.core.records import SourceState
from pipeline.core.states import ContentStatus, SourceStatus
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.rows import SourceFacts, facts_of
from pipeline.run.convert import Converter, never_reason
from pipeline.run.hashes import FileHashes, probed
from pipeline.run.model import Fetcher, Job, SourceRecorder
from pipeline.run.plan import Decision, Policy, Step, decide
from pipeline.run.tally import Tally, reason_key

log = logging.getLogger(__name__)
NEEDS_IO = frozenset({Step.HASH, Step.REUSE, Step.FETCH})


@dataclasses.dataclass(frozen=True, slots=True)
class Triaged:
    """An entry that needs its bytes located: hashed, reused or fetched."""

    entry: Entry
    state: SourceState | None
    step: Step
    replaces_no_purpose: bool = False  # the ledger holds it with no purpose from an earlier run


class Preparer:
    def __init__(
        self,
        *,
        ledger: RunLedger,
        writer: SourceRecorder,  # the ledger's writer (or a dry run's, which records nothing)
        fetcher: Fetcher | None,
        tally: Tally,
        policy: Policy,
        patience: float,
        converter: Converter | None = None,  # None: --convert never
        clock_ns: Callable[[], int] = time.time_ns,
        on_fatal: Callable[[RunFatal], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.converter = converter
        self.writer = writer
        self.fetcher = fetcher
        self.tally = tally
        self.policy = policy
        self.clock_ns = clock_ns
        self.patience = patience  # seconds a restarting ledger server is waited for
        self.on_fatal = on_fatal  # told when a fetch finds nothing more can be read
        self.claimed: set[int] = set()  # contents this run has queued for upload
        # Contents this run has decoded and queued for upload, by (sha256, purpose): the same
        # bytes met again link to a content in `claimed` (counted as the same bytes, never
        # queued again), so they need not be decoded again.
        self._decoded: dict[tuple[str, str], AudioInfo] = {}
        self._hashes = FileHashes()  # local files: hashed once per run, large ones a core each

    # --- 2a. triage -----------------------------------------------------------------------------

    async def triage(self, batch: Sequence[Entry]) -> list[Triaged]:
        """Decide a batch; settle what needs no I/O; return the rest."""
        self.tally.seen += len(batch)
        entries, errors = await _stat_unstated(batch)
        states = await self.ledger.states_patiently(
            (e.source for e in entries), patience=self.patience
        )
        now, work = self.clock_ns(), []
        for entry, error in zip(entries, errors, strict=True):
            state = states.get((entry.source, entry.purpose))
            decision = decide(entry, state, policy=self.policy, now_ns=now, error=error)
            stale = bool(entry.purpose) and (entry.source, "") in states
            if decision.step in NEEDS_IO:
                work.append(Triaged(entry, state, decision.step, stale))
            else:
                self._settle(entry, decision, stale)
        return work

    def _settle(self, entry: Entry, decision: Decision, stale: bool) -> None:
        if decision.step is Step.SKIP_DONE:
            self.tally.skipped_done += 1
        elif decision.step is Step.SKIP_FAILED:
            self.tally.skipped_failed += 1
        elif decision.step is Step.SKIP_YOUNG:
            self.tally.young += 1
            log.info("left alone %s: modified less than --min-age ago", _where(entry))
        else:
            facts = facts_of(entry, replaces_no_purpose=stale)
            self._fail(entry, facts, decision.reason or "unknown")

    # --- 2b. prepare ----------------------------------------------------------------------------

    async def prepare(self, work: Triaged) -> Job | None:
        """Locate, probe and link one entry; the job if its content still needs an upload."""
        if not await self._claim(work.entry):
            return None
        try:
            located, audio = await self._locate(work)
        except PermanentError as exc:
            self._fail(work.entry, facts_of(work.entry), exc.reason)
            return None
        except EntryError as exc:  # timeouts, a file still being written: left for the next run
            self._leave(work.entry, exc.reason)
            return None
        except RunFatal as exc:  # a bucket refused us: nothing recorded, the entry stays pending
            if self.on_fatal is None:
                raise
            self.on_fatal(exc)
            return None
        if isinstance(audio, OtherFormat):
            located, judged = await self._converted(work.entry, located, audio)
            if judged is None:
                return None
            audio = judged
        if isinstance(audio, PermanentError):
            # Size, mtime and hash are kept, so an unchanged bad file is skipped next time.
            self._fail(work.entry, facts_of(work.entry, located), audio.reason)
            located.discard()
            return None
        try:
            return await self._link(work, located, audio)
        except BaseException:
            located.discard()
            raise

    async def _converted(
        self, entry: Entry, located: Located, other: OtherFormat
    ) -> tuple[Located, AudioInfo | PermanentError | None]:
        """The WAV decoded from a source in another format, and what it is; or why it cannot
        be sent; None when it is dealt with already (left for the next run, or the run is
        stopping)."""
        known = self._decoded.get((located.sha256, entry.purpose))
        if known is not None:
            return located, known  # linked as the same bytes again: never sent twice
        try:
            if self.converter is None:
                return located, PermanentError(
                    await asyncio.to_thread(never_reason, other, located)
                )
            converted, audio = await self.converter.convert(located, other)
        except PermanentError as exc:
            return located, exc
        except Stopped:
            located.discard()
            return located, None
        except EntryError as exc:  # no decoder installed, or out of time: the next run tries
            located.discard()
            self._leave(entry, exc.reason)
            return located, None
        except BaseException:
            located.discard()
            raise
        return converted, audio

    async def _claim(self, entry: Entry) -> bool:
        """On a shared ledger, claim the source just before its bytes are read: False when
        another live run holds it (it comes back to this one if that run dies)."""
        if await self.writer.claim_source(facts_of(entry)):
            return True
        self.tally.elsewhere += 1
        return False

    async def _locate(self, work: Triaged) -> tuple[Located, AudioInfo | PermanentError]:
        """The entry's bytes and what they are (or why they cannot be sent)."""
        entry = work.entry
        if work.step is Step.FETCH:
            if self.fetcher is None:
                raise PermanentError("URL sources need a fetcher")
            assert entry.url is not None
            fetched = await self.fetcher.fetch(entry.url, etag=entry.etag)
            try:
                return await asyncio.to_thread(probed, fetched)
            except BaseException:  # cancelled by a stop: the temporary file goes too
                fetched.discard()
                raise
        assert entry.path is not None and entry.size is not None
        if work.step is Step.REUSE and work.state is not None and work.state.sha256:
            body = Body(size=entry.size, path=entry.path, mtime_ns=entry.mtime_ns)
            return await asyncio.to_thread(probed, Located(work.state.sha256, body))
        return await self._hashes.located(entry.path, entry.size, entry.mtime_ns)

    async def _link(self, work: Triaged, located: Located, audio: AudioInfo) -> Job | None:
        """Record the source against its content; return a job if this run must upload it."""
        entry = work.entry
        facts = facts_of(entry, located, replaces_no_purpose=work.replaces_no_purpose)
        converted = located.converted
        link = await self.writer.link(
            facts,
            sha256=located.sha256,
            size=located.size,
            converted_from=converted.converted_from if converted is not None else None,
            sent_sha256=converted.sha256 if converted is not None else None,
        )
        status, content_id, ours = link.status, link.content_id, link.claimed
        retry = link.retryable or self.policy.retry_failed
        if status == ContentStatus.FAILED and retry and content_id not in self.claimed:
            ours = await self.writer.reset(content_id)
            status = ContentStatus.PENDING
        if status != ContentStatus.PENDING or content_id in self.claimed or not ours:
            self._count_linked(entry, status, content_id, elsewhere=not ours)
            located.discard()
            return None
        self.claimed.add(content_id)
        if converted is not None:
            self._decoded[(located.sha256, entry.purpose)] = audio
        filename = entry.filename if converted is None else _as_wav(entry.filename)
        return Job(content_id, entry.source, entry.purpose, filename, audio, located)

    def _count_linked(
        self, entry: Entry, status: str, content_id: int, *, elsewhere: bool = False
    ) -> None:
        if elsewhere:
            self.tally.elsewhere += 1
            log.info(
                "same bytes being uploaded by another run: %s (%s)", entry.source, entry.purpose
            )
        elif status == ContentStatus.DONE or content_id in self.claimed:
            self.tally.deduplicated += 1
            log.info(
                "same bytes as an upload already %s: %s (%s)",
                "done" if status == ContentStatus.DONE else "in this run",
                entry.source,
                entry.purpose,
            )
        else:
            self.tally.skipped_failed += 1

    # --- recording ------------------------------------------------------------------------------

    def _fail(self, entry: Entry, facts: SourceFacts, reason: str) -> None:
        self.tally.failed[reason_key(reason)] += 1
        log.warning("failed %s: %s", _where(entry), reason)
        self.writer.record_source(facts, status=SourceStatus.FAILED, error=reason)

    def _leave(self, entry: Entry, reason: str) -> None:
        self.tally.left[reason_key(reason)] += 1
        log.warning("left for the next run %s: %s", _where(entry), reason)
        self.writer.record_source(
            facts_of(entry), status=SourceStatus.FAILED, error=reason, retryable=True
        )


def _as_wav(filename: str) -> str:
    """The name a decoded WAV is sent under: `a.flac` -> `a.wav`."""
    stem, dot, _ = filename.rpartition(".")
    return f"{stem if dot and stem else filename}.wav"


async def _stat_unstated(batch: Sequence[Entry]) -> tuple[list[Entry], list[str | None]]:
    """The batch with every local file's size and mtime filled in (manifest rows come without),
    and for each entry the reason it cannot be read, if it cannot."""
    if all(e.path is None or e.size is not None for e in batch):
        return list(batch), [None] * len(batch)
    return await asyncio.to_thread(_stat_all, batch)


def _stat_all(batch: Sequence[Entry]) -> tuple[list[Entry], list[str | None]]:
    entries: list[Entry] = []
    errors: list[str | None] = []
    for entry in batch:
        error = None
        if entry.path is not None and entry.size is None and entry.error is None:
            try:
                info = os.stat(entry.path)
                entry = dataclasses.replace(entry, size=info.st_size, mtime_ns=info.st_mtime_ns)
            except OSError as exc:
                error = f"cannot read file: {exc.strerror or exc}"
        entries.append(entry)
        errors.append(error)
    return entries, errors


def _where(entry: Entry) -> str:
    return f"{entry.source} line {entry.line}" if entry.line is not None else entry.source
