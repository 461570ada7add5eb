"""pace: one row per shared rate limit (a Clanforge credential, a Slack channel)

Revision ID: 0016_shared_pace
Revises: 0015_silences
Create Date: 2026-12-06 06:00:00

Several replicas on one database send through one Clanforge credential and into one Slack
channel: each limit is one ``next_at`` every replica takes its turns from, so the configured
``requests_per_second`` is the account's whatever the number of replicas.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_shared_pace"
down_revision: str | None = "0015_silences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pace",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pace")),
    )


def downgrade() -> None:
    op.drop_table("pace")
