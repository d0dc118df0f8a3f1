"""The ledger's tables (SQLAlchemy Core). The schema itself is owned by the Alembic migrations in
`migrations/versions/`; this module must describe the same columns (a test compares them).

- `contents`: one row per (sha256, purpose): what the service was asked to take and what it
  answered. `sha256` is of the source's bytes; a source the service does not take as it is
  was decoded to a WAV, and `converted_from` says from what, `sent_sha256` which bytes went.
  Status `pending` -> `done` (ids recorded) or `failed`. A failure with `retryable` set
  ran out of attempts on transient errors: the next plain run takes it again; one without is
  failed for good (only `--retry-failed` retries it).
- `sources`: one row per (source, purpose): a file path, manifest row or object in a bucket, its
  size, mtime (a file's) or ETag (an object's) and hash (so an unchanged file is not hashed
  again, nor an unchanged object downloaded again) and the content it resolved to. `source` is
  the key (absolute path, the URL, or `s3://bucket/key`); `written` is the text as the manifest
  wrote it. `status` is `ok`
  once linked to a content, `failed` when the source itself is bad (not audio, no purpose, bad
  row, download refused), with `retryable` as above (a download that kept timing out).
- `runs`: one row per run: who, when, how it ended and its summary; while it runs, a heartbeat
  (the time, by the database's clock, and the figures so far).

On a PostgreSQL ledger shared by several runs, a run claims a source before it hashes or fetches
it, and a content before it uploads it (`claimed_by`, `claimed_until`); a claim lasts `lease`
seconds unless the run's heartbeat renews it, so the claims of a run that died expire and other
runs take the work over. `origin` says which folder or manifest a source came from, so a run
takes over only work from the sources it was given.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The newest migration in migrations/versions/: defined in `plain` so that `status` can check it
# without SQLAlchemy (a test keeps it in step with the migrations).
from pipeline.ledger.plain import SCHEMA_REVISION as SCHEMA_REVISION

# Columns are in the order the migrations leave them (later ones were added at the end), and a
# 64-bit integer is INTEGER on SQLite as the migrations made it (SQLite's INTEGER holds 64 bits):
# `schema.create` builds a new ledger from these tables, the same schema the migrations build.
Int64 = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

contents = Table(
    "contents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("size", Int64),
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
    Column("claimed_by", Integer),  # the run uploading it (a fleet's ledger), until...
    Column("claimed_until", Float),  # ...this time by the database's clock, unless renewed
    Column("converted_from", Text),  # decoded to WAV from this (flac, aiff, ...); NULL: as is
    Column("sent_sha256", Text),  # the sha256 of that WAV, the bytes sent; NULL: as is
    UniqueConstraint("sha256", "purpose", name="uq_contents_sha256_purpose"),
    Index("ix_contents_status", "status"),
    Index("ix_contents_claimed_by", "claimed_by"),
    Index("ix_contents_converted", "converted_from", "status"),
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
    Column("size", Int64),
    Column("mtime_ns", Int64),
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
    Column("origin", Text),  # the folder or manifest it was found in (absolute path)
    Column("claimed_by", Integer),  # the run hashing or fetching it (a fleet's ledger), until...
    Column("claimed_until", Float),  # ...this time by the database's clock, unless renewed
    # The status of its content, repeated here by every write that changes it, so that counts
    # by status read one table (on a million sources, a join costs seconds).
    Column("content_status", Text),
    Column("etag", Text),  # an object's ETag (a bucket's), compared with the next listing's
    UniqueConstraint("source", "purpose", name="uq_sources_source_purpose"),
    Index("ix_sources_content_id", "content_id"),
    Index("ix_sources_state", "status", "content_status", "purpose"),
    Index("ix_sources_claimed_by", "claimed_by"),
    Index("ix_sources_origin", "origin"),
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
    Column("summary", Text),  # its figures: at the end, and so far while it runs (heartbeats)
    Column("heartbeat_at", Float),  # by the database's clock; a run is live while this is fresh
    Column("lease", Float),  # seconds its claims last without a heartbeat
)

# Alembic's own version table, as its migration context defines it (not in `metadata`: the
# migrations never describe it).
version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
