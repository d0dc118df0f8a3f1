"""A source's row in the ledger, and back: the one mapping between entries and `sources` rows.

What a source is (`SourceFacts`, from an entry and its located bytes), the row the writer
records for it (`source_row`), the columns an upsert writes, and the entry a row stands for when a
run takes over another's work (`entry_from_row`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from pipeline.content.located import Located
from pipeline.core.entry import Entry
from pipeline.core.names import path_bytes, source_key, wire_filename
from pipeline.core.states import SourceStatus
from pipeline.ledger.sqlite_sql import SOURCE_UPSERT

# What a source upsert writes: every column of `sources` but its id, in the table's order (a test
# holds them to `models.py`); and what it overwrites on a row that exists (not its key, nor when
# it was first seen).
WRITTEN = SOURCE_UPSERT.keys
SOURCE_COLUMNS = tuple(c for c in WRITTEN if c not in ("source", "purpose", "created_at"))


@dataclasses.dataclass(slots=True)
class SourceFacts:
    """What was learned about a source in this run, to be recorded. Treat it as immutable; it
    is not declared frozen because a run makes one or two per entry, and a frozen dataclass of
    this many fields costs several times as much to build."""

    source: str
    purpose: str
    kind: str  # file | url | s3
    written: str | None = None
    path: str | None = None
    filename: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    line: int | None = None
    external_id: str | None = None
    extra: Mapping[str, str] | None = None
    origin: str | None = None
    etag: str | None = None
    replaces_no_purpose: bool = False  # an earlier run recorded it with no purpose: drop that

    def columns(self) -> dict[str, Any]:
        """The columns of its `sources` row that say what the source is (not how it fared)."""
        return {
            "source": self.source,
            "purpose": self.purpose,
            "kind": self.kind,
            "written": self.written,
            "path": self.path,
            "filename": self.filename,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "line": self.line,
            "external_id": self.external_id,
            "extra": json.dumps(dict(self.extra), ensure_ascii=False) if self.extra else None,
            "origin": self.origin,
            "etag": self.etag,
        }


def facts_of(
    entry: Entry, located: Located | None = None, *, replaces_no_purpose: bool = False
) -> SourceFacts:
    body = located.body if located is not None else None
    # Positional, in the fields' order: a run makes one or two per entry, keywords cost more.
    return SourceFacts(
        entry.source,
        entry.purpose,
        entry.kind,
        entry.written,
        source_key(entry.path) if entry.path is not None else None,
        wire_filename(entry.filename),
        # An object's listed size stands until its bytes are fetched: with its ETag, it is what
        # the next listing is compared with.
        body.size if body is not None else (entry.size if entry.kind == "s3" else None),
        body.mtime_ns if body is not None else None,
        located.sha256 if located is not None else None,
        entry.line,
        entry.external_id,
        entry.extra,
        entry.origin,
        (located.etag if located is not None else None) or entry.etag,
        replaces_no_purpose,
    )


def source_row(
    facts: SourceFacts,
    *,
    status: SourceStatus,
    error: str | None,
    retryable: bool,
    content_id: int | None,
    run_id: int,
    now: float,
) -> dict[str, Any]:
    """The whole `sources` row recorded for `facts` by run `run_id` at `now`."""
    return {
        **facts.columns(),
        "status": status,
        "retryable": int(retryable),
        "error": error,
        "content_id": content_id,
        "content_status": None,  # a link fills it in from the content
        "run_id": run_id,
        "created_at": now,
        "updated_at": now,
        "claimed_by": None,  # recorded: whatever claim this run held on it is done with
        "claimed_until": None,
    }


def entry_from_row(row: Any) -> Entry:
    """The entry a source row stands for, to prepare it again (its file re-stat'ed)."""
    path = os.fsdecode(path_bytes(row.path)) if row.kind == "file" and row.path else None
    url = (row.written or "").strip() if row.kind == "url" else None
    if row.kind == "s3":  # a manifest row's text, or the key of an object listed
        url = (row.written or "").strip() or path_bytes(row.source).decode("utf-8")
    return Entry(
        source=row.source,
        purpose=row.purpose,
        filename=row.filename or "",
        written=row.written,
        path=path,
        url=url,
        line=row.line,
        external_id=row.external_id,
        extra=json.loads(row.extra) if row.extra else None,
        origin=row.origin,
        size=row.size if row.kind == "s3" else None,
        etag=row.etag,
    )
