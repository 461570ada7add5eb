"""Bringing the schema up to date from inside the running process.

Alembic's async template calls ``asyncio.run`` itself, which cannot work inside our loop, so we
hand it a connection we already hold (the cookbook's "connection sharing").
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.engine import is_postgres

# Any constant works; it only has to be the same in every replica.
_MIGRATION_LOCK_ID = 0x636C6E66  # "clnf"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("notifier.migrations")))
    return cfg


def _upgrade(connection: Connection, cfg: Config) -> None:
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration; with several replicas exactly one applies them."""
    cfg = alembic_config()
    async with engine.begin() as conn:
        if is_postgres(engine):
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        await conn.run_sync(_upgrade, cfg)


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def is_up_to_date(engine: AsyncEngine) -> bool:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
    return current == head
