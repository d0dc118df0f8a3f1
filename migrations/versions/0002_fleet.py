"""fleet: claims with leases, heartbeats, where each source came from; each source's content status

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Adds nullable columns and indexes only (and, on PostgreSQL, widens sizes and mtimes to 64 bits):
a ledger written by the previous release upgrades in place, every row and id kept, and nothing
about a row's state changes (no claims, no origin). `sources.content_status` repeats the status
of the source's content, filled in here from `contents`, so that `status` counts a million
sources from one table instead of a million-row join.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Sizes past 2 GB and nanosecond times need 64 bits; SQLite's INTEGER has them already.
        for table, column in (("sources", "size"), ("sources", "mtime_ns"), ("contents", "size")):
            op.alter_column(table, column, type_=sa.BigInteger)
    op.add_column("runs", sa.Column("heartbeat_at", sa.Float))
    op.add_column("runs", sa.Column("lease", sa.Float))
    op.add_column("sources", sa.Column("origin", sa.Text))
    for table in ("sources", "contents"):
        op.add_column(table, sa.Column("claimed_by", sa.Integer))
        op.add_column(table, sa.Column("claimed_until", sa.Float))
        op.create_index(f"ix_{table}_claimed_by", table, ["claimed_by"])
    op.create_index("ix_sources_origin", "sources", ["origin"])
    op.add_column("sources", sa.Column("content_status", sa.Text))
    op.execute(
        "UPDATE sources SET content_status = "
        "(SELECT contents.status FROM contents WHERE contents.id = sources.content_id) "
        "WHERE content_id IS NOT NULL"
    )
    # Counts by status read this index alone, in order; it takes over from the one on status.
    op.create_index("ix_sources_state", "sources", ["status", "content_status", "purpose"])
    op.drop_index("ix_sources_status", "sources")


def downgrade() -> None:
    op.create_index("ix_sources_status", "sources", ["status"])
    op.drop_index("ix_sources_state", "sources")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("content_status")
    op.drop_index("ix_sources_origin", "sources")
    for table in ("sources", "contents"):
        op.drop_index(f"ix_{table}_claimed_by", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("claimed_until")
            batch.drop_column("claimed_by")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease")
        batch.drop_column("heartbeat_at")
