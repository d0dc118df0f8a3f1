"""What `ingest status` shows, as plain data (`--json`) and as text: both render the same
figures, so they always agree."""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.times import local_time


def status_data(
    counts: list[tuple[str, str, int]],
    runs: Sequence[Mapping[Any, Any]],
    errors: list[tuple[str, int]],
    *,
    ledger: str,
    running: Sequence[Mapping[Any, Any]] = (),
    now: float = 0.0,
    converted: Sequence[tuple[str, str, int]] = (),
) -> dict[str, Any]:
    """Everything `ingest status` shows, as plain data: the text view and `--json` both render
    this, so they always agree."""
    by_purpose: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for purpose, status, n in counts:
        by_purpose[purpose or "(none)"][status] += n
    total: collections.Counter[str] = collections.Counter()
    for counter in by_purpose.values():
        total.update(counter)
    by_format: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for decoded_from, status, n in converted:
        by_format[decoded_from][status] += n
    return {
        "ledger": ledger,
        "by_purpose": {p: _status_counts(by_purpose[p]) for p in sorted(by_purpose)},
        "all": _status_counts(total),
        # Contents (the same bytes for one purpose) decoded to WAV, by what they were.
        "converted": {f: _status_counts(by_format[f]) for f in sorted(by_format)},
        "top_errors": [{"error": error, "count": n} for error, n in errors],
        "running": [_running_data(run, now) for run in running],
        "runs": [_run_data(run) for run in runs],
    }


def _running_data(run: Mapping[Any, Any], now: float) -> dict[str, Any]:
    """A run marked running, with its figures so far; `live` while its heartbeat is fresh."""
    beat = run["heartbeat_at"]
    lease = run["lease"] or 60.0
    age = None if beat is None else max(0.0, now - float(beat))
    return _run_data(run) | {
        "heartbeat_at": beat,
        "heartbeat_age_s": None if age is None else round(age, 1),
        "lease_s": lease,
        "live": age is not None and age <= lease,
    }


def _status_counts(counter: Mapping[str, int]) -> dict[str, int]:
    counts = {key: int(counter.get(key, 0)) for key in ("done", "failed", "pending")}
    return counts | {"total": sum(counter.values())}


def _run_data(run: Mapping[Any, Any]) -> dict[str, Any]:
    summary = json.loads(run["summary"]) if run["summary"] else {}
    return {
        "id": run["id"],
        "status": run["status"],
        "exit_code": run["exit_code"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "pid": run["pid"],
        "host": run["host"],
        "uploaded": summary.get("uploaded", 0),
        "failed": summary.get("failed", 0),
        "left": summary.get("left_for_next_run", 0),
    }


def render_status(data: Mapping[str, Any]) -> str:
    lines = [f"{'purpose':<14}{'done':>9}{'failed':>9}{'pending':>9}{'total':>9}"]
    rows = [*data["by_purpose"].items(), ("all", data["all"])]
    lines += [
        f"{name:<14}{c['done']:>9}{c['failed']:>9}{c['pending']:>9}{c['total']:>9}"
        for name, c in rows
    ]
    if data["converted"]:
        lines += ["", f"{'decoded to WAV':<22}{'done':>9}{'failed':>9}{'pending':>9}{'total':>9}"]
        lines += [
            f"  {name:<20}{c['done']:>9}{c['failed']:>9}{c['pending']:>9}{c['total']:>9}"
            for name, c in data["converted"].items()
        ]
    if data["running"]:
        lines += ["", "running now:"]
        lines += [_running_line(run) for run in data["running"]]
    if data["top_errors"]:
        lines += ["", "most common errors (failed or pending):"]
        lines += [f"  {e['count']:>6}  {e['error']}" for e in data["top_errors"]]
    lines += ["", "last runs:"]
    if not data["runs"]:
        lines.append("  (none)")
    for run in data["runs"]:
        code = "-" if run["exit_code"] is None else run["exit_code"]
        lines.append(
            f"  #{run['id']:<5}{local_time(run['started_at'])}  {run['status']:<12}exit {code:<4}"
            f"uploaded {run['uploaded']}, failed {run['failed']}, left {run['left']}  "
            f"(pid {run['pid']} on {run['host']})"
        )
    return "\n".join(lines)


def _running_line(run: Mapping[str, Any]) -> str:
    where = (
        f"#{run['id']:<5}{run['host']} (pid {run['pid']}), started {local_time(run['started_at'])}"
    )
    figures = f"uploaded {run['uploaded']}, failed {run['failed']}, left {run['left']}"
    age = run["heartbeat_age_s"]
    if run["live"]:
        return f"  {where}: {figures} so far; heartbeat {age:.0f} s ago"
    silent = "never" if age is None else f"{age:.0f} s ago"
    return (
        f"  {where}: LOST (last heartbeat {silent}, lease {run['lease_s']:.0f} s); "
        f"{figures} when last heard; its claims are free for the others"
    )
