"""The ledger's tables (SQLAlchemy Core). The schema itself is owned by the Alembic migrations in
`migrations/versions/`; this module must describe the same columns (a test compares them).

- `contents`: one row per (sha256, purpose): what the service was asked to take and what it
  answered. Status `pending` -> `done` (ids recorded) or `failed`. A failure with `retryable` set
  ran out of attempts on transient errors: the next plain run takes it again; one without is
  failed for good (only `--retry-failed` retries it).
- `sources`: one row per (source, purpose): a file path or manifest row, its size, mtime and hash
  (so an unchanged file is not hashed again) and the content it resolved to. `source` is the key
  (absolute path, or the URL); `written` is the text as the manifest wrote it. `status` is `ok`
  once linked to a content, `failed` when the source itself is bad (not audio, no purpose, bad
  row, download refused), with `retryable` as above (a download that kept timing out).
- `runs`: one row per run: who, when, how it ended and its summary.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

# The newest migration in migrations/versions/. A ledger at this revision is opened without
# loading Alembic at all (a test keeps this in step with the migrations).
SCHEMA_REVISION = "0001"

metadata = MetaData()

contents = Table(
    "contents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("size", Integer),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("retryable", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("voice_id", Text),
    Column("instrumental_id", Text),
    Column("trace_id", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("done_at", Float),
    UniqueConstraint("sha256", "purpose", name="uq_contents_sha256_purpose"),
    Index("ix_contents_status", "status"),
)

sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("written", Text),
    Column("kind", Text, nullable=False),
    Column("path", Text),
    Column("filename", Text),
    Column("size", Integer),
    Column("mtime_ns", Integer),
    Column("sha256", Text),
    Column("content_id", Integer, ForeignKey("contents.id", name="fk_sources_content_id")),
    Column("status", Text, nullable=False, server_default="ok"),
    Column("retryable", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("line", Integer),
    Column("external_id", Text),
    Column("extra", Text),
    Column("run_id", Integer),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("source", "purpose", name="uq_sources_source_purpose"),
    Index("ix_sources_content_id", "content_id"),
    Index("ix_sources_status", "status"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("pid", Integer, nullable=False),
    Column("host", Text, nullable=False),
    Column("command", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="running"),
    Column("exit_code", Integer),
    Column("summary", Text),
)
