"""Every state the ledger records and every reason a run stops, as enums that mypy can check.

Kept apart from everything else, with no imports, so that the ledger, the reports and the steps
can share the same names without pulling each other in.
"""

from __future__ import annotations

import enum


class Purpose(enum.StrEnum):
    SONG = "song"
    VOICE = "voice"
    INSTRUMENTAL = "instrumental"


PURPOSES = tuple(p.value for p in Purpose)


class SourceStatus(enum.StrEnum):
    """Of a source row itself: linked to its content, or bad on its own (not audio, bad row)."""

    OK = "ok"
    FAILED = "failed"


class ContentStatus(enum.StrEnum):
    """Of a content row: what the service was asked to take, and what it answered."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    TIME_BUDGET = "time-budget"
    REFUSED = "refused"
    OUTAGE = "outage"
    LEDGER_FAILED = "ledger-failed"
    CRASHED = "crashed"


class StopReason(enum.StrEnum):
    """Why a run stopped taking new work before its sources ran out."""

    SIGINT = "SIGINT"
    SIGTERM = "SIGTERM"
    DEADLINE = "deadline"
    FATAL = "fatal"  # the key or the account was refused
    OUTAGE = "outage"  # the service stayed unreachable past --max-outage
    LEDGER = "ledger"  # the ledger could not be written
    LEDGER_GONE = "ledger-gone"  # the ledger's server stayed out of reach
