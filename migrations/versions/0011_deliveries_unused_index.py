"""deliveries: drop the index on next_attempt_at, which no query uses

Revision ID: 0011_deliveries_unused_index
Revises: 0010_watches_due_order
Create Date: 2026-12-05 01:45:00

Every claim finds its deliveries through the status index (SQLite) or the pending heads and
the primary key (PostgreSQL), and filters on next_attempt_at there; no statement seeks or
orders by next_attempt_at alone. The index still cost an entry for every delivery written
and a rewrite for every retry scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_deliveries_unused_index"
down_revision: str | None = "0010_watches_due_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_next_attempt_at", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_next_attempt_at", "deliveries", ["next_attempt_at"])
