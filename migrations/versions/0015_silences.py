"""silences: what they hold, and the events and deliveries each held

Revision ID: 0015_silences
Revises: 0014_subscription_secrets
Create Date: 2026-12-06 06:00:00

A silence (notifier.core.silences) holds the events of the watches it matches while it lasts:
they are recorded with it (``events.silence_id``) and their deliveries wait as "held"
(``deliveries.silence_id``) until it ends. Plain columns, no foreign keys: the record of what a
silence held outlives nothing, and adding a foreign key on SQLite would copy both tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_silences"
down_revision: str | None = "0014_subscription_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_version_id", sa.BigInteger(), nullable=True),
        sa.Column("account_service_id", sa.BigInteger(), nullable=True),
        sa.Column("label_glob", sa.String(length=200), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_by", sa.String(length=120), nullable=True),
        sa.Column("end_handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_silences_ends_at"), "silences", ["ends_at"], unique=False)
    # Plain ALTER TABLE on both databases, as in 0009 and 0012.
    op.add_column("events", sa.Column("silence_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_events_silence_id"), "events", ["silence_id"], unique=False)
    op.add_column("deliveries", sa.Column("silence_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_index(op.f("ix_events_silence_id"), table_name="events")
    op.execute("ALTER TABLE deliveries DROP COLUMN silence_id")
    op.execute("ALTER TABLE events DROP COLUMN silence_id")
    op.drop_index(op.f("ix_silences_ends_at"), table_name="silences")
    op.drop_table("silences")
