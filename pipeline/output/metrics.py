"""The run's figures for Prometheus, as a node_exporter textfile (`--metrics-file PATH`).

Written during the run (every few seconds) and at its end, each time whole and atomically
(prometheus_client writes a temporary file and renames it into place), so the collector never
reads half a file. `ingest_last_success_timestamp_seconds` survives failed runs: it is read back
from the previous file and kept until a run succeeds again, which is what an alert on "no
successful run for a day" needs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
LAST_SUCCESS = "ingest_last_success_timestamp_seconds"

_GAUGES = {
    "ingest_running": "1 while a run is going, 0 once it has ended",
    "ingest_run_started_timestamp_seconds": "when the run started (Unix time)",
    "ingest_run_duration_seconds": "how long the run has taken so far (or took)",
    "ingest_exit_code": "the run's exit code (-1 while it runs)",
    "ingest_uploaded_files": "uploads the service accepted in this run",
    "ingest_uploaded_bytes": "bytes of those uploads",
    "ingest_failed_files": "entries this run recorded as failed for good",
    "ingest_left_files": "entries left for the next run (transient failures)",
    "ingest_skipped_files": "entries skipped: done or failed in an earlier run, or duplicates",
    "ingest_retries": "attempts beyond the first",
    LAST_SUCCESS: "when a run last ended with exit 0 (Unix time)",
}


class MetricsFile:
    def __init__(self, path: str, *, ledger: str, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ledger = ledger
        self.clock = clock
        self.started = clock()
        self.last_success = _read_last_success(self.path)

    def write(self, figures: dict[str, Any], *, exit_code: int | None = None) -> None:
        """Write the file whole; `exit_code` when the run has ended. Never fails the run."""
        now = self.clock()
        if exit_code == 0:
            self.last_success = now
        values = {
            "ingest_running": 0 if exit_code is not None else 1,
            "ingest_run_started_timestamp_seconds": self.started,
            "ingest_run_duration_seconds": now - self.started,
            "ingest_exit_code": -1 if exit_code is None else exit_code,
            "ingest_uploaded_files": figures.get("uploaded", 0),
            "ingest_uploaded_bytes": figures.get("uploaded_bytes", 0),
            "ingest_failed_files": figures.get("failed", 0),
            "ingest_left_files": figures.get("left_for_next_run", 0),
            "ingest_skipped_files": _skipped(figures),
            "ingest_retries": figures.get("retries", 0),
        }
        if self.last_success is not None:
            values[LAST_SUCCESS] = self.last_success
        try:
            write_to_textfile(str(self.path), self._registry(values))
        except OSError as exc:
            log.warning("cannot write the metrics file %s: %s", self.path, exc.strerror or exc)

    def _registry(self, values: dict[str, float]) -> CollectorRegistry:
        registry = CollectorRegistry()
        for name, value in values.items():
            gauge = Gauge(name, _GAUGES[name], ["ledger"], registry=registry)
            gauge.labels(ledger=self.ledger).set(value)
        return registry


def _skipped(figures: dict[str, Any]) -> int:
    keys = ("skipped_done", "skipped_failed", "deduplicated", "young", "elsewhere")
    return sum(int(figures.get(key, 0)) for key in keys)


def _read_last_success(path: Path) -> float | None:
    """The last success recorded by an earlier run's file, if there is one to read."""
    with contextlib.suppress(OSError, ValueError):
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            if family.name == LAST_SUCCESS and family.samples:
                return float(family.samples[0].value)
    return None
