"""The run's live counters: what it has seen, sent, skipped, failed and left so far.

The steps count into one `Tally` as they settle each entry (triage and prepare, the uploads);
the live display, the heartbeat, the metrics file and the end-of-run summary read it.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from pipeline.sources import CrawlStats


@dataclasses.dataclass
class Tally:
    seen: int = 0  # entries taken from the sources
    uploaded: int = 0  # uploads the service accepted in this run
    uploaded_bytes: int = 0
    deduplicated: int = 0  # sources whose bytes were uploaded for another source
    skipped_done: int = 0  # done in an earlier run
    skipped_failed: int = 0  # failed for good in an earlier run, not retried
    young: int = 0  # modified less recently than --min-age: left alone
    elsewhere: int = 0  # being done by another live run on the same (PostgreSQL) ledger
    failed: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    left: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    retries: int = 0  # attempts beyond the first
    sending: dict[int, str] = dataclasses.field(default_factory=dict)  # content id -> source
    would_upload: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    would_upload_bytes: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    # Sources sent (or, in a dry run, that would be sent) decoded to WAV, by what they were.
    converted: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    crawl: CrawlStats = dataclasses.field(default_factory=CrawlStats)
    sources_done: bool = False  # every entry has been read from the sources

    @property
    def in_flight(self) -> int:
        """Uploads on the wire now (each content is sent by one request at a time)."""
        return len(self.sending)

    def count_unchanged(self, count: int) -> None:
        """Files the crawl left out as done and unchanged, with no entry made of them."""
        self.seen += count
        self.skipped_done += count

    def mark_sources_done(self) -> None:
        self.sources_done = True

    @property
    def processed(self) -> int:
        """Entries dealt with, one way or another."""
        return (
            self.uploaded
            + self.deduplicated
            + self.skipped_done
            + self.skipped_failed
            + self.young
            + self.elsewhere
            + self.failed_total
            + self.left_total
            + sum(self.would_upload.values())
        )

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def left_total(self) -> int:
        return sum(self.left.values())

    def as_dict(self, elapsed: float) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "uploaded": self.uploaded,
            "uploaded_bytes": self.uploaded_bytes,
            "deduplicated": self.deduplicated,
            "skipped_done": self.skipped_done,
            "skipped_failed": self.skipped_failed,
            "young": self.young,
            "elsewhere": self.elsewhere,
            "failed": self.failed_total,
            "failed_by_reason": dict(self.failed.most_common(20)),
            "left_for_next_run": self.left_total,
            "left_by_reason": dict(self.left.most_common(20)),
            "retries": self.retries,
            "converted": sum(self.converted.values()),
            "converted_by_format": dict(self.converted.most_common(20)),
            "ignored_files": self.crawl.ignored,
            "elapsed_s": round(elapsed, 3),
        }


def reason_key(reason: str) -> str:
    """Group reasons in the summary: the part before any per-file detail."""
    return reason.split(" (", 1)[0][:120]
