"""Migrations against the real databases: the chain applies, reverts, and matches tables.py."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.notify.sink import LiveMessage, PendingPost
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.migrate import alembic_config, upgrade
from notifier.store.tables import Base
from tests.conftest import T0, make_subscription, seed_subscription


def _diff(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


async def test_migrated_schema_matches_the_table_definitions(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_slack_revision_reverts_dropping_only_unfinished_posts(engine: AsyncEngine) -> None:
    subscription = await seed_subscription(engine, make_subscription(kind="slack_channel"))
    live = DatabaseLiveMessages(engine, lambda: T0)
    await live.put(subscription.id, 1, 10, LiveMessage("C1", "1.000100", rendered="abc"))
    await live.reserve(subscription.id, 1, 11, "C1")

    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0004_upstream")
    await upgrade(engine)

    assert await live.get(subscription.id, 1, 10) == LiveMessage("C1", "1.000100")
    assert await live.get(subscription.id, 1, 11) is None
    assert isinstance(await live.reserve(subscription.id, 1, 11, "C1"), PendingPost)


def _subscription_columns(connection: Connection) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns("subscriptions")}


async def test_delivery_revision_goes_down_and_up_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0006_slack")
        assert "disabled_reason" not in await conn.run_sync(_subscription_columns)

    result = await upgrade(engine)
    assert (result.before, result.after) == ("0006_slack", "0007_delivery")
    async with engine.connect() as conn:
        assert "disabled_reason" in await conn.run_sync(_subscription_columns)
