"""How what a run did is told: the end-of-run summary, `status` and exports. Nothing here
writes to the ledger."""

from __future__ import annotations

import collections
import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pipeline.core.records import EXPORT_FIELDS
from pipeline.core.times import local_time
from pipeline.run.tally import Tally


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render_summary(tally: Tally, *, elapsed: float, outcome: str, dry_run: bool) -> str:
    lines = []
    if dry_run:
        lines.append("dry run: nothing was uploaded and the ledger was not changed")
        total = sum(tally.would_upload.values())
        total_bytes = sum(tally.would_upload_bytes.values())
        lines.append(f"  would upload: {total} files, {human_size(total_bytes)}")
        for purpose in sorted(tally.would_upload):
            lines.append(
                f"    {purpose:<13}{tally.would_upload[purpose]:>8} files  "
                f"{human_size(tally.would_upload_bytes[purpose])}"
            )
    rate = tally.uploaded_bytes / elapsed if elapsed > 0 else 0.0
    lines += [
        f"run {outcome} in {elapsed:.1f} s",
        f"  entries seen      {tally.seen}",
        f"  uploaded          {tally.uploaded} "
        f"({human_size(tally.uploaded_bytes)}, {human_size(rate)}/s)",
        f"  same bytes again  {tally.deduplicated}",
        f"  skipped, done     {tally.skipped_done}",
        f"  skipped, failed   {tally.skipped_failed} (earlier runs; --retry-failed retries them)",
        f"  failed now        {tally.failed_total}",
    ]
    lines += [f"      {n:>6}  {reason}" for reason, n in tally.failed.most_common(8)]
    lines.append(f"  left for next run {tally.left_total}")
    lines += [f"      {n:>6}  {reason}" for reason, n in tally.left.most_common(8)]
    lines.append(f"  retries           {tally.retries}")
    if tally.young:
        lines.append(f"  too new, left     {tally.young} (modified less than --min-age ago)")
    if tally.elsewhere:
        lines.append(f"  done by other runs {tally.elsewhere} (held by a live run on this ledger)")
    if tally.crawl.ignored or tally.crawl.hidden or tally.crawl.loops:
        lines.append(
            f"  not audio, ignored {tally.crawl.ignored}; hidden skipped {tally.crawl.hidden}; "
            f"symlink loops cut {tally.crawl.loops}"
        )
    return "\n".join(lines)


def status_data(
    counts: list[tuple[str, str, int]],
    runs: Sequence[Mapping[Any, Any]],
    errors: list[tuple[str, int]],
    *,
    ledger: str,
    running: Sequence[Mapping[Any, Any]] = (),
    now: float = 0.0,
) -> dict[str, Any]:
    """Everything `ingest status` shows, as plain data: the text view and `--json` both render
    this, so they always agree."""
    by_purpose: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for purpose, status, n in counts:
        by_purpose[purpose or "(none)"][status] += n
    total: collections.Counter[str] = collections.Counter()
    for counter in by_purpose.values():
        total.update(counter)
    return {
        "ledger": ledger,
        "by_purpose": {p: _status_counts(by_purpose[p]) for p in sorted(by_purpose)},
        "all": _status_counts(total),
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


class Exporter:
    """Turns batches of ledger rows (in the ledger's export column order, `extra` last, as its
    JSON text) into export text: JSON lines, or CSV with the manifests' own columns after ours.
    JSON lines are written by orjson (compact, UTF-8 as is; ten times the speed of `json`), so a
    million rows is a few seconds of formatting."""

    def __init__(
        self, fmt: str, columns: Sequence[str], extra_columns: Sequence[str], *, end: str = "\n"
    ) -> None:
        self.fmt = fmt
        self.extra_columns = list(extra_columns)
        self.end = end
        assert tuple(columns[: len(EXPORT_FIELDS)]) == EXPORT_FIELDS, "rows in the export order"
        self._retryable = EXPORT_FIELDS.index("retryable")

    def header(self) -> str:
        if self.fmt == "jsonl":
            return ""
        return _csv_text([[*EXPORT_FIELDS, *self.extra_columns]], self.end)

    def text(self, rows: Sequence[Sequence[Any]]) -> str:
        if self.fmt == "jsonl":
            return "".join([self._json_line(row) + self.end for row in rows])
        return _csv_text([self._csv_row(row) for row in rows], self.end)

    def _values(self, row: Sequence[Any]) -> list[Any]:
        values = list(row[: len(EXPORT_FIELDS)])
        values[self._retryable] = bool(values[self._retryable])
        return values

    def _json_line(self, row: Sequence[Any]) -> str:
        record: dict[str, Any] = dict(zip(EXPORT_FIELDS, self._values(row), strict=True))
        if row[-1]:
            record["extra"] = orjson.Fragment(row[-1])  # already JSON text, as the ledger keeps it
        return orjson.dumps(record).decode()

    def _csv_row(self, row: Sequence[Any]) -> list[str]:
        cells = [_cell(value) for value in self._values(row)]
        if not self.extra_columns:
            return cells
        extra = json.loads(row[-1]) if row[-1] else {}
        return cells + [extra.get(name, "") for name in self.extra_columns]


def _csv_text(rows: Sequence[Sequence[str]], end: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=end).writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
