"""watches: ids are never handed out twice on SQLite (AUTOINCREMENT)

Revision ID: 0013_watch_ids_never_reused
Revises: 0012_watch_quiet_until
Create Date: 2026-12-06 03:30:00

Without AUTOINCREMENT SQLite gives a new row the largest id plus one, so removing the newest
watch and adding another gave the new one the old id: /watches/4 and a script's saved id
changed meaning. PostgreSQL's sequence never reuses one, and is left alone.

The table is copied (SQLite cannot add AUTOINCREMENT in place), which drops and recreates
``watches``: with foreign keys on, dropping it would cascade to every status, event and
delivery. ``notifier db upgrade`` and ``notifier run`` migrate with foreign keys off and check
them before committing (store/migrate.py); any other way in with them on is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_watch_ids_never_reused"
down_revision: str | None = "0012_watch_quiet_until"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "0013 copies the watches table and needs foreign keys off: "
            "migrate with `notifier db upgrade`"
        )
    with op.batch_alter_table(
        "watches", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    # Ids that are never reused harm no earlier revision: copying the table back is all risk.
    pass
