"""watches and deliveries: indexes in the claims' whole order

Revision ID: 0010_claim_order_indexes
Revises: 0009_reply_digest
Create Date: 2026-12-05 00:30:00

Both claims take a batch in an order under a LIMIT: the poller's due watches by (next_poll_at,
id), the dispatcher's pending deliveries by id. The indexes held only the first key (next_poll_at;
status), which SQLite did not mind (its indexes end with the rowid) but PostgreSQL did:

- watches: with most of them due (after a restart, say), it read and sorted every due watch for
  every batch: 6 ms a claim at 10,000 watches, growing with the list; 1 ms with the index on
  (next_poll_at, id), which it walks and leaves at the LIMIT.
- deliveries: it walked the primary key past every delivered row of the history for every
  claim: 3.6 ms a claim behind 10,000 delivered, growing for ever; 0.4 ms with (status, id).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_claim_order_indexes"
down_revision: str | None = "0009_reply_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_watches_due_order", "watches", ["next_poll_at", "id"])
    op.drop_index("ix_watches_next_poll_at", table_name="watches")
    op.create_index("ix_deliveries_claim_order", "deliveries", ["status", "id"])
    op.drop_index("ix_deliveries_status", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.drop_index("ix_deliveries_claim_order", table_name="deliveries")
    op.create_index("ix_watches_next_poll_at", "watches", ["next_poll_at"])
    op.drop_index("ix_watches_due_order", table_name="watches")
