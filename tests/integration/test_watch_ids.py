"""Watch ids are never handed out twice: /watches/4 keeps meaning the same watch."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.engine import create_engine
from notifier.store.migrate import alembic_config, head_revision, upgrade
from notifier.store.tables import DELIVERIES, EVENTS, Watch
from notifier.store.watches import add_watch, remove_watch_by_id
from tests.conftest import (
    T0,
    make_status,
    seed_watch_with_event,
)


async def test_the_newest_watch_removed_leaves_its_id_unused(engine: AsyncEngine) -> None:
    first = await add_watch(engine, 1, 10, "first", "cli", T0)
    newest = await add_watch(engine, 1, 11, "newest", "cli", T0)
    assert await remove_watch_by_id(engine, newest)
    again = await add_watch(engine, 1, 12, "added after", "cli", T0)
    assert again > newest > first


def _to_0011(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "0011_deliveries_unused_index")


async def test_sqlite_migration_keeps_every_watchs_history_and_stops_reuse(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to_0011)
        _, watch_id = await seed_watch_with_event(engine, make_status(4, 40), event_id="evt_kept")
        gone = await add_watch(engine, 1234, 567891, "US fleet", "cli", T0)
        await remove_watch_by_id(engine, gone)

        result = await upgrade(engine)
        # From before 0013 to whatever head is now: 0013 is among the revisions applied.
        assert (result.before, result.after) == ("0011_deliveries_unused_index", head_revision())
        async with engine.connect() as conn:
            sql = await conn.scalar(
                text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'watches'")
            )
            assert "AUTOINCREMENT" in str(sql)
            # The copy dropped the old table with foreign keys off: nothing cascaded.
            assert await conn.scalar(select(func.count()).select_from(EVENTS)) == 1
            assert await conn.scalar(select(func.count()).select_from(DELIVERIES)) == 1
            assert await conn.scalar(select(Watch.label).where(Watch.id == watch_id)) == (
                "EU fleet"
            )
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert await add_watch(engine, 1234, 567892, "APAC fleet", "cli", T0) > watch_id
    finally:
        await engine.dispose()
