"""objects in a bucket: each source's ETag, for change detection without a download

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Adds one nullable column: a ledger written by the previous release upgrades in place, every row
and id kept, and nothing about a row's state changes (files and URLs have no ETag). An object
listed from a bucket is unchanged while its ETag and size are, as a file is while its size and
mtime are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("etag", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("etag")
