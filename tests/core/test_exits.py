"""The exit code of a run: the most urgent outcome wins, whatever order things happened in."""

from __future__ import annotations

import pytest

from pipeline.core.exits import Exit, run_exit
from pipeline.core.states import StopReason as S


@pytest.mark.parametrize(
    ("stops", "kw", "code"),
    [
        (set(), {}, Exit.OK),
        (set(), {"left": 2}, Exit.TRANSIENT),
        (set(), {"failed": 1, "left": 2}, Exit.FAILED),  # a person must look, before a rerun
        ({S.SIGINT, S.FATAL}, {}, Exit.REFUSED),  # the key was refused, whatever came first
        ({S.SIGTERM}, {"ledger": Exit.LEDGER}, Exit.LEDGER),
        ({S.SIGINT}, {"failed": 3}, Exit.SIGINT),
        ({S.SIGTERM}, {}, Exit.SIGTERM),
        ({S.DEADLINE}, {}, Exit.TIME_BUDGET),
        ({S.DEADLINE}, {"finished": True}, Exit.OK),  # the budget ran out after the last entry
        ({S.OUTAGE}, {}, Exit.TRANSIENT),
        ({S.OUTAGE}, {"failed": 1}, Exit.FAILED),
        ({S.LEDGER_GONE}, {"ledger": Exit.TRANSIENT}, Exit.TRANSIENT),
    ],
)
def test_the_most_urgent_outcome_wins(stops: set[S], kw: dict[str, object], code: Exit) -> None:
    args: dict[str, object] = {"finished": False, "failed": 0, "left": 0} | kw
    assert run_exit(stops, **args) is code  # type: ignore[arg-type]
