"""owners of watches, mentions and daily digests of subscriptions; digests in the outbox

Revision ID: 0017_owners_digest
Revises: 0016_shared_pace
Create Date: 2026-12-06 06:30:00

A digest is sent through the outbox like an event, claimed once per (subscription, day) by its
unique ``digest_id``; it is about no one watch, so ``deliveries.watch_id`` may be NULL. On SQLite
that change copies ``deliveries`` (foreign keys off, as ``notifier db upgrade`` migrates).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_owners_digest"
down_revision: str | None = "0016_shared_pace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("watches", sa.Column("owners", sa.JSON(), nullable=True))
    op.add_column("subscriptions", sa.Column("mention_on", sa.JSON(), nullable=True))
    op.add_column("subscriptions", sa.Column("mention", sa.JSON(), nullable=True))
    op.add_column("subscriptions", sa.Column("digest", sa.String(60), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("digest_id", sa.String(60), nullable=True))
        batch.add_column(sa.Column("body", sa.JSON(), nullable=True))
        batch.alter_column("watch_id", existing_type=sa.Integer(), nullable=True)
        batch.create_unique_constraint("uq_deliveries_digest_id", ["digest_id"])


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE digest_id IS NOT NULL")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_digest_id", type_="unique")
        batch.alter_column("watch_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("body")
        batch.drop_column("digest_id")
    op.drop_column("subscriptions", "digest")
    op.drop_column("subscriptions", "mention")
    op.drop_column("subscriptions", "mention_on")
    op.drop_column("watches", "owners")
