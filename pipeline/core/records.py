"""What the ledger holds, as the steps and the reports see it: plain values, no database.

The ledger (`pipeline.ledger`) reads and writes these; the steps decide with them and the reports
format them, without importing the ledger's machinery.
"""

from __future__ import annotations

import dataclasses

from pipeline.core.states import ContentStatus, SourceStatus


@dataclasses.dataclass(slots=True)
class SourceState:
    """What the ledger knows of one (source, purpose). Treat it as immutable; not declared
    frozen because a lookup makes one per row found, and a frozen dataclass of this many fields
    costs several times as much to build."""

    id: int
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str  # SourceStatus of the source itself
    retryable: int  # of the source's failure
    error: str | None
    content_id: int | None
    content_status: str | None  # ContentStatus, when linked
    content_retryable: int | None

    def effective_status(self) -> str:
        if self.status != SourceStatus.OK:
            return self.status
        return self.content_status or ContentStatus.PENDING

    def failed_for_good(self) -> bool:
        """Failed, and not by running out of attempts on transient errors."""
        if self.status == SourceStatus.FAILED:
            return not self.retryable
        return self.content_status == ContentStatus.FAILED and not self.content_retryable


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What the service answered to an accepted upload."""

    voice_id: str | None
    instrumental_id: str | None
    trace_id: str | None


# One exported record: these fields, in this order (README.md documents them), then `extra`.
EXPORT_FIELDS = (
    "source",
    "purpose",
    "sha256",
    "status",
    "voice_id",
    "instrumental_id",
    "error",
    "attempts",
    "retryable",
    "trace_id",
    "size",
    "kind",
    "filename",
    "line",
    "external_id",
)
