"""converted: what a content was decoded from, and the sha256 of the bytes actually sent

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

A content is still keyed by the sha256 of its source's bytes (decoding is deterministic, so the
same source always gives the same WAV, and a rerun skips it as before). A source in a format the
service does not take is decoded to WAV, and its content records what it was decoded from
(`converted_from`: flac, aiff, alac, ...) and the sha256 of the WAV sent (`sent_sha256`). Both
are NULL for a file sent as it is. Adds nullable columns and an index: a ledger written by the
previous release upgrades in place, every row and id kept.

The previous release refused every format but WAV and MP3, and recorded those files failed for
good; they can be sent now. Their failures are marked retryable (nothing else about them
changes), so the next plain run takes them again, decodes them and sends them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contents", sa.Column("converted_from", sa.Text))
    op.add_column("contents", sa.Column("sent_sha256", sa.Text))
    # `status` counts converted contents by format from this index alone; the NULLs of the
    # files sent as they are sit at one end of it and are not read.
    op.create_index("ix_contents_converted", "contents", ["converted_from", "status"])
    op.execute(
        "UPDATE sources SET retryable = 1 WHERE status = 'failed' AND retryable = 0 AND ("
        "error LIKE '% audio is not accepted (only WAV or MP3)' "
        "OR error LIKE 'WAV holding % audio is not accepted (only PCM, float, A-law or µ-law WAV)' "
        "OR error = 'MPEG audio layer I/II is not accepted (only WAV or MP3)' "
        "OR error LIKE 'free-format MP3 is not accepted%' "
        "OR error = 'not audio: the bytes are neither WAV nor MP3')"
    )


def downgrade() -> None:
    op.drop_index("ix_contents_converted", "contents")
    with op.batch_alter_table("contents") as batch:
        batch.drop_column("sent_sha256")
        batch.drop_column("converted_from")
