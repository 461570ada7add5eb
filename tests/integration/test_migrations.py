"""Migrations against the real databases: the chain applies, reverts, and matches tables.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.live_messages import LiveMessage, LiveMessageKey, PendingPost
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.migrate import alembic_config, upgrade
from notifier.store.tables import DELIVERIES, WATCHES, Base
from tests.conftest import (
    T0,
    make_status,
    make_subscription,
    seed_subscription,
    seed_watch_with_event,
)


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
    posted, pending = LiveMessageKey(subscription.id, 1, 10), LiveMessageKey(subscription.id, 1, 11)
    await live.put(posted, LiveMessage("C1", "1.000100", rendered="abc"))
    await live.reserve(pending, "C1")

    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0004_upstream")
    await upgrade(engine)

    assert await live.get(posted) == LiveMessage("C1", "1.000100")
    assert await live.get(pending) is None
    assert isinstance(await live.reserve(pending, "C1"), PendingPost)


def _subscription_columns(connection: Connection) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns("subscriptions")}


async def test_delivery_revision_goes_down_and_up_again(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0006_slack")
        assert "disabled_reason" not in await conn.run_sync(_subscription_columns)

    result = await upgrade(engine)
    assert result.before == "0006_slack"
    assert result.applied
    async with engine.connect() as conn:
        assert "disabled_reason" in await conn.run_sync(_subscription_columns)


async def test_live_refresh_revision_reverts_dropping_only_refreshes(engine: AsyncEngine) -> None:
    subscription, watch = await seed_watch_with_event(engine, make_status(3), kind="slack_channel")
    async with engine.begin() as conn:
        await conn.execute(
            DELIVERIES.insert().values(
                event_id=None,
                subscription_id=subscription.id,
                watch_id=watch,
                kind="refresh",
                refresh_slot=True,
                status="pending",
                attempts=0,
                next_attempt_at=T0,
                created_at=T0,
            )
        )

    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0007_delivery")
    await upgrade(engine)

    async with engine.connect() as conn:
        rows = (await conn.execute(select(DELIVERIES.c.kind, DELIVERIES.c.event_id))).all()
    assert [(row.kind, row.event_id is not None) for row in rows] == [("event", True)]


async def test_quiet_until_revision_has_every_older_watch_planned_on_its_next_poll(
    engine: AsyncEngine,
) -> None:
    """Rows from before 0012 get a moment already past: no stored deadline lets a reply go
    unparsed until a plan has stored one."""
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0011_deliveries_unused_index")
        await conn.execute(
            text(
                "INSERT INTO watches (account_service_id, image_version_id, label, source, "
                "active, poll_errors, created_at) VALUES (1234, 1, 'old', 'cli', true, 0, :at)"
            ),
            {"at": _stored(conn.dialect.name, T0)},
        )
    await upgrade(engine)

    async with engine.connect() as conn:
        [quiet_until] = (await conn.execute(select(WATCHES.c.quiet_until))).scalars()
    assert quiet_until == T0


def _stored(dialect: str, moment: datetime) -> Any:
    """``moment`` as the column stores it: zone-less text on SQLite."""
    return moment.replace(tzinfo=None).isoformat(" ") if dialect == "sqlite" else moment
