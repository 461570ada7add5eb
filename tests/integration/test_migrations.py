"""The delivery revision goes down and up again on SQLite and PostgreSQL, and the migrated schema
matches the tables the code uses."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.migrate import alembic_config, upgrade
from notifier.store.tables import Base


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


def _layout(connection: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    columns = {c["name"] for c in inspector.get_columns("subscriptions")}
    return set(inspector.get_table_names()), columns


async def test_delivery_revision_goes_down_and_up_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0004_upstream")
        tables, columns = await conn.run_sync(_layout)
    assert "slack_posts" not in tables
    assert "disabled_reason" not in columns

    result = await upgrade(engine)
    assert (result.before, result.after) == ("0004_upstream", "0002_delivery")
    async with engine.connect() as conn:
        tables, columns = await conn.run_sync(_layout)
    assert "slack_posts" in tables
    assert "disabled_reason" in columns


async def test_migrated_schema_matches_the_tables_in_code(engine: AsyncEngine) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []
