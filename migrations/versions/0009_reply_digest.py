"""job_status: the digest of the reply behind each stored status

Revision ID: 0009_reply_digest
Revises: 0008_live_refresh
Create Date: 2026-11-29 05:10:00

A poll whose reply is byte for byte the last one is settled by comparing digests, without
parsing it or loading the stored status. Rows from before have no digest: the next poll of each
writes one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_reply_digest"
down_revision: str | None = "0008_live_refresh"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite >= 3.35 drops columns), as in 0007.
def upgrade() -> None:
    op.add_column("job_status", sa.Column("reply_digest", sa.LargeBinary(length=16), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE job_status DROP COLUMN reply_digest")
