"""The results: one `Goal` per line of the team's table, printed as each section ends and again
together at the end as a Markdown table that can be pasted into the README."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Goal:
    work: str
    ingest: str  # what ingest measured, e.g. "25.9 s"
    reference: str  # what it is compared with, e.g. "ideal 6.25 s; curl 18.2 s"
    ratio: str  # e.g. "0.24 of ideal; 0.70x curl's speed"
    goal: str
    passed: bool | None  # None: informational, or not measured

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "-"}[self.passed]


def skipped(work: str, goal: str, why: str) -> Goal:
    return Goal(work, "not measured", why, "-", goal, None)


def speed(reference_s: float, ingest_s: float) -> float:
    """How fast ingest went as a share of the reference (1.0: as fast; 2.0: twice as fast)."""
    return reference_s / ingest_s if ingest_s > 0 else float("inf")


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def line(text: str) -> None:
    print(f"   {text}", flush=True)


def render(goals: Sequence[Goal]) -> str:
    rows = [("work", "ingest", "reference", "ratio", "goal", "result")]
    rows += [(g.work, g.ingest, g.reference, g.ratio, g.goal, g.verdict) for g in goals]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
