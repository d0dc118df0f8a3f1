"""How a command ends: the exit codes, and the one function that decides a run's.

    0   every entry is done (or was skipped: done earlier, or failed for good earlier)
    1   finished, but this run recorded entries that failed for good (bad files or rows)
    2   usage or configuration error; nothing was run
    3   the ledger is held by another live run
    4   the time budget (--max-duration) ran out with work left
    5   the key or the account was refused; entries stay pending
    6   transient failures left, or the service stayed unreachable; a rerun should help
    7   the ledger could not be written (disk full, read-only, removed); nothing half-written
    130 / 143  interrupted by SIGINT / SIGTERM

Errors that end a command carry their code (`IngestError.exit_code`); a run that ends normally
gets its code from `run_exit`. README.md repeats the table.
"""

from __future__ import annotations

import enum

from pipeline.core.states import RunStatus, StopReason


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    HELD = 3
    TIME_BUDGET = 4
    REFUSED = 5
    TRANSIENT = 6
    LEDGER = 7
    SIGINT = 130
    SIGTERM = 143


RUN_STATUS = {
    Exit.OK: RunStatus.FINISHED,
    Exit.FAILED: RunStatus.FINISHED,
    Exit.TRANSIENT: RunStatus.FINISHED,
    Exit.TIME_BUDGET: RunStatus.TIME_BUDGET,
    Exit.REFUSED: RunStatus.REFUSED,
    Exit.LEDGER: RunStatus.LEDGER_FAILED,
    Exit.SIGINT: RunStatus.INTERRUPTED,
    Exit.SIGTERM: RunStatus.INTERRUPTED,
}


def run_exit(
    stops: set[StopReason], *, finished: bool, failed: int, left: int, ledger: Exit | None = None
) -> Exit:
    """The outcome of a run, most urgent first, whatever order things happened in: a refused
    key (5), a ledger that cannot be written (7, or 6 for a ledger server out of reach), a
    signal, the time budget; then a bad file needs a person (1), while transient leftovers and a
    service that stayed down only need a rerun (6). `stops`: every reason the run was asked to
    stop for; `ledger`: the exit code of the ledger's failure, if it failed."""
    if StopReason.FATAL in stops:
        return Exit.REFUSED
    if ledger is not None:
        return ledger
    for signal, code in ((StopReason.SIGINT, Exit.SIGINT), (StopReason.SIGTERM, Exit.SIGTERM)):
        if signal in stops:
            return code
    if StopReason.DEADLINE in stops and not finished:
        return Exit.TIME_BUDGET
    if failed:
        return Exit.FAILED
    if left or StopReason.OUTAGE in stops:
        return Exit.TRANSIENT
    return Exit.OK
