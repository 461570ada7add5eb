"""Bringing the schema up to date from inside the running process.

Alembic's async template calls ``asyncio.run`` itself, which cannot work inside our loop, so we
hand it a connection we already hold (the cookbook's "connection sharing").
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    """Where the schema was before and after; equal when there was nothing to apply."""

    before: str | None
    after: str | None

    @property
    def applied(self) -> bool:
        return self.before != self.after


def _upgrade(connection: Connection, cfg: Config) -> SchemaUpgrade:
    before = _current_revision(connection)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
    return SchemaUpgrade(before, _current_revision(connection))


async def upgrade(engine: AsyncEngine) -> SchemaUpgrade:
    """Apply every pending migration; with several replicas exactly one applies them.

    The others wait on the lock, then find the schema at head and apply nothing.
    """
    cfg = alembic_config()
    if is_postgres(engine):
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
            return await conn.run_sync(_upgrade, cfg)
    async with engine.connect() as conn:
        # SQLite's way to change a table is to copy it, and dropping the original with foreign
        # keys on would cascade to its children: off for the migration (it cannot change inside
        # a transaction), checked before the commit, on again after.
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute("PRAGMA foreign_keys=OFF")
        try:
            async with conn.begin():
                result = await conn.run_sync(_upgrade, cfg)
                problems = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if problems:
                    raise RuntimeError(f"the migration broke foreign keys: {problems[:5]}")
            return result
        finally:
            await driver.execute("PRAGMA foreign_keys=ON")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision; None when it has no schema yet."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)


async def is_up_to_date(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
