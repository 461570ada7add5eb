"""watches: the due-order index covers the poll claim's whole ORDER BY (next_poll_at, id)

Revision ID: 0010_watches_due_order
Revises: 0009_reply_digest
Create Date: 2026-12-05 00:30:00

The poller claims a batch of due watches ordered by (next_poll_at, id) under a LIMIT. With the
index on next_poll_at alone, PostgreSQL read and sorted every due watch for every batch once most
of them were due (after a restart, say): 6 ms a claim at 10,000 watches, growing with the list.
On (next_poll_at, id) it walks the index and leaves it at the LIMIT: 1 ms. SQLite did not mind
(its indexes end with the rowid), and its plans do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_watches_due_order"
down_revision: str | None = "0009_reply_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_watches_due_order", "watches", ["next_poll_at", "id"])
    op.drop_index("ix_watches_next_poll_at", table_name="watches")


def downgrade() -> None:
    op.create_index("ix_watches_next_poll_at", "watches", ["next_poll_at"])
    op.drop_index("ix_watches_due_order", table_name="watches")
