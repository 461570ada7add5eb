"""delivery: subscriptions disabled by their receiver (410 Gone)

Revision ID: 0007_delivery
Revises: 0006_slack
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_delivery"
down_revision: str | None = "0006_slack"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite >= 3.35 drops columns): a batch "move and copy"
# of subscriptions on SQLite would cascade-delete the rows that reference it.
def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("disabled_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE subscriptions DROP COLUMN disabled_reason")
