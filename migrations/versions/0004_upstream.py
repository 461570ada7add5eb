"""upstream: poll health, pausing, per-watch interval, timing detector memory

Revision ID: 0004_upstream
Revises: 0001
Create Date: 2026-11-29 01:32:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_upstream"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("poll_failing", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("interval_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("job_status", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("eta_estimated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("stalled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("eta_baseline", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("overdue", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("milestone", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("rate_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("rate_base_progress", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("job_status", schema=None) as batch_op:
        for name in (
            "rate_base_progress",
            "rate_since",
            "milestone",
            "overdue",
            "eta_baseline",
            "stalled",
            "moved_at",
            "eta_estimated",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("watches", schema=None) as batch_op:
        for name in ("interval_seconds", "paused_reason", "poll_failing"):
            batch_op.drop_column(name)
