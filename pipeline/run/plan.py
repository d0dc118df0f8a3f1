"""What an entry needs next: a pure decision from the entry, what the ledger knows and the clock.

    entry ──► has its own error (no purpose, bad row, unreadable) ─► FAIL, or SKIP_FAILED if the
      │                                                              ledger already says so
      ├─► an object listed from a bucket ─► ETag or size not what the ledger holds ─► FETCH
      │                                   └─► unchanged ─► as a URL, below (never REUSE: the
      │                                       bytes are not here; they are fetched to be sent)
      ├─► a URL ─► done earlier ─► SKIP_DONE; failed for good ─► SKIP_FAILED; else FETCH
      └─► a file ─► modified less than --min-age ago ─► SKIP_YOUNG
                 ├─► unchanged (size, mtime) since hashed ─► done ─► SKIP_DONE
                 │                                          failed for good ─► SKIP_FAILED
                 │                                          else ─► REUSE (the recorded hash)
                 └─► new or changed ─► HASH

"Failed for good" is a failure that is not just running out of attempts on transient errors;
`--retry-failed` takes those again. Nothing here does I/O, so every branch is tested directly.
"""

from __future__ import annotations

import dataclasses
import enum

from pipeline.core.entry import Entry
from pipeline.core.records import SourceState
from pipeline.core.states import ContentStatus


class Step(enum.StrEnum):
    SKIP_DONE = "skip-done"
    SKIP_FAILED = "skip-failed"
    SKIP_YOUNG = "skip-young"
    FAIL = "fail"
    REUSE = "reuse"
    HASH = "hash"
    FETCH = "fetch"


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    retry_failed: bool = False
    min_age_ns: int | None = None  # files modified more recently than this are left alone


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    reason: str | None = None  # for FAIL: why; for the skips: what the ledger said


def decide(
    entry: Entry,
    state: SourceState | None,
    *,
    policy: Policy,
    now_ns: int,
    error: str | None = None,
) -> Decision:
    """The next step for `entry`. `error` is a problem found while looking at it (a file that
    cannot be read); the entry's own `error` counts the same way."""
    problem = entry.error or error
    if problem is not None:
        if state is not None and state.error == problem:
            earlier = _earlier(state, policy)
            if earlier is not None:
                return earlier  # the same problem as last time: reported then, not again
        return Decision(Step.FAIL, problem)
    if entry.url is not None:
        if entry.etag is not None and not _same_object(entry, state):
            return Decision(Step.FETCH)  # new, or written again since: its bytes are new
        return (_earlier(state, policy) if state is not None else None) or Decision(Step.FETCH)
    return _file(entry, state, policy, now_ns)


def _same_object(entry: Entry, state: SourceState | None) -> bool:
    """The listed object is the one the ledger knows: same ETag, same size."""
    return state is not None and (state.etag, state.size) == (entry.etag, entry.size)


def _file(entry: Entry, state: SourceState | None, policy: Policy, now_ns: int) -> Decision:
    if (
        policy.min_age_ns is not None
        and entry.mtime_ns is not None
        and now_ns - entry.mtime_ns < policy.min_age_ns
    ):
        return Decision(Step.SKIP_YOUNG)
    if (
        state is not None
        and state.sha256 is not None
        and (state.size, state.mtime_ns) == (entry.size, entry.mtime_ns)
    ):
        return _earlier(state, policy) or Decision(Step.REUSE)
    return Decision(Step.HASH)


def _earlier(state: SourceState, policy: Policy) -> Decision | None:
    """A skip when the ledger already holds this entry's outcome, else None."""
    if state.effective_status() == ContentStatus.DONE:
        return Decision(Step.SKIP_DONE)
    if state.failed_for_good() and not policy.retry_failed:
        return Decision(Step.SKIP_FAILED, state.error)
    return None
