"""watches: until when a repeated reply is no news, as the last planned poll decided

Revision ID: 0012_watch_quiet_until
Revises: 0011_deliveries_unused_index
Create Date: 2026-12-06 03:10:00

The poll plan decides once, when it plans a poll, until when the same reply again can only
confirm the stored status; the claim reads that moment instead of working it out again. Rows
from before get a moment already past (their creation), so the next poll of each is planned and
stores the plan's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_watch_quiet_until"
down_revision: str | None = "0011_deliveries_unused_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite >= 3.35 drops columns), as in 0009.
def upgrade() -> None:
    op.add_column("watches", sa.Column("quiet_until", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE watches SET quiet_until = created_at")


def downgrade() -> None:
    op.execute("ALTER TABLE watches DROP COLUMN quiet_until")
