"""initial ledger: contents, sources, runs

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("size", sa.Integer),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("retryable", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("voice_id", sa.Text),
        sa.Column("instrumental_id", sa.Text),
        sa.Column("trace_id", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("done_at", sa.Float),
        sa.UniqueConstraint("sha256", "purpose", name="uq_contents_sha256_purpose"),
    )
    op.create_index("ix_contents_status", "contents", ["status"])
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("written", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("filename", sa.Text),
        sa.Column("size", sa.Integer),
        sa.Column("mtime_ns", sa.Integer),
        sa.Column("sha256", sa.Text),
        sa.Column(
            "content_id",
            sa.Integer,
            sa.ForeignKey("contents.id", name="fk_sources_content_id"),
        ),
        sa.Column("status", sa.Text, nullable=False, server_default="ok"),
        sa.Column("retryable", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("line", sa.Integer),
        sa.Column("external_id", sa.Text),
        sa.Column("extra", sa.Text),
        sa.Column("run_id", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("source", "purpose", name="uq_sources_source_purpose"),
    )
    op.create_index("ix_sources_content_id", "sources", ["content_id"])
    op.create_index("ix_sources_status", "sources", ["status"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        sa.Column("exit_code", sa.Integer),
        sa.Column("summary", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("sources")
    op.drop_table("contents")
