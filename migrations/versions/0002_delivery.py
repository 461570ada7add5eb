"""delivery: subscriptions disabled by their receiver, Slack posts under way, live message age

Revision ID: 0002_delivery
Revises: 0004_upstream
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_delivery"
down_revision: str | None = "0004_upstream"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shows_event_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "slack_posts",
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("account_service_id", sa.BigInteger(), nullable=False),
        sa.Column("image_version_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_slack_posts_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "subscription_id",
            "account_service_id",
            "image_version_id",
            name=op.f("pk_slack_posts"),
        ),
    )


def downgrade() -> None:
    op.drop_table("slack_posts")
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_column("shows_event_at")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("disabled_reason")
