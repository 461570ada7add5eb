"""subscriptions: signing secrets and body templates of webhooks added through the admin API

Revision ID: 0014_subscription_secrets
Revises: 0013_watch_ids_never_reused
Create Date: 2026-12-06 06:00:00

A webhook added through the API signs its requests (Standard Webhooks) with a secret the
database keeps, and during a rotation with the replaced one too until ``previous_secret_until``.
It may also name a preset or carry its own body template, as a ``[[subscription]]`` can. Rows
from before keep NULLs: unsigned, our own payload, as they were sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_subscription_secrets"
down_revision: str | None = "0013_watch_ids_never_reused"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("signing_secret", "previous_secret", "previous_secret_until", "preset", "template")


# Plain ALTER TABLE on both databases (SQLite >= 3.35 drops columns), as in 0009 and 0012.
def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("signing_secret", sa.Text(), nullable=True))
    op.add_column("subscriptions", sa.Column("previous_secret", sa.Text(), nullable=True))
    op.add_column(
        "subscriptions",
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("subscriptions", sa.Column("preset", sa.String(20), nullable=True))
    op.add_column("subscriptions", sa.Column("template", sa.Text(), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE subscriptions DROP COLUMN {column}")
