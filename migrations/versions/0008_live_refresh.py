"""deliveries: live-message refreshes beside event deliveries

Revision ID: 0008_live_refresh
Revises: 0007_delivery
Create Date: 2026-11-29 02:55:00

A progress- or ETA-only change has no public event, yet a Slack live message must show it. It is
queued as a delivery of kind ``refresh`` without an event (``event_id`` NULL), so it rides the
outbox's ordering, leases, retries and pacing, and is written in the poll tick's transaction.
``refresh_slot`` is TRUE while a refresh is unclaimed; the unique key on (subscription, watch,
slot) keeps at most one such refresh per live message (NULLs never clash), so a backlog merges.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_live_refresh"
down_revision: str | None = "0007_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("event_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(
            sa.Column("kind", sa.String(length=10), server_default="event", nullable=False)
        )
        batch.add_column(sa.Column("refresh_slot", sa.Boolean(), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_deliveries_subscription_id_watch_id_refresh_slot"),
            ["subscription_id", "watch_id", "refresh_slot"],
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE event_id IS NULL")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(
            op.f("uq_deliveries_subscription_id_watch_id_refresh_slot"), type_="unique"
        )
        batch.drop_column("refresh_slot")
        batch.drop_column("kind")
        batch.alter_column("event_id", existing_type=sa.String(length=40), nullable=False)
