"""slack live messages: pending posts and what the message shows

Revision ID: 0006_slack
Revises: 0004_upstream
Create Date: 2026-11-29 01:25:00

``ts`` becomes nullable: a row without ``ts`` is a post under way (written before
``chat.postMessage``), so a crash between Slack's answer and storing the ``ts`` is noticed and
recovered instead of silently posting a second live message. ``rendered`` is a fingerprint of what
the message shows, so an update that would change nothing is skipped (merged updates).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_slack"
down_revision: str | None = "0004_upstream"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slack_messages") as batch:
        batch.alter_column("ts", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("rendered", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM slack_messages WHERE ts IS NULL")
    with op.batch_alter_table("slack_messages") as batch:
        batch.drop_column("pending_since")
        batch.drop_column("rendered")
        batch.alter_column("ts", existing_type=sa.String(length=40), nullable=False)
