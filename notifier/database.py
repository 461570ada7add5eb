"""The database as the commands open it: only ``run`` and ``db upgrade`` create or migrate one.

A read command that created an empty database in the wrong directory, or migrated one the
service had not reached yet, answered "nothing is watched" while the service ran with nine
watches: every other command opens an existing database at the code's revision or says, in one
line, where it looked and which command creates it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import Settings
from notifier.store.engine import create_engine, sqlite_file
from notifier.store.locks import CONFIG_SYNC_LOCK, exclusive
from notifier.store.migrate import SchemaUpgrade, current_revision, head_revision, upgrade
from notifier.store.subscriptions import sync_config_subscriptions
from notifier.store.watches import WatchSync, sync_config_watches

CREATE_HINT = "create it with `notifier db upgrade` (or `notifier run`)"


class DatabaseMissing(Exception):
    """The database is not there, or not at this version's schema: exit 1 naming the fix."""


def describe(url: str) -> str:
    """Where a database is, for people: an absolute file path, or the URL without password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(Path(parsed.database or ":memory:").absolute())
    return parsed.render_as_string(hide_password=True)


@asynccontextmanager
async def existing_database(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database that exists and is at head; :class:`DatabaseMissing` otherwise.

    Checks the SQLite file before connecting, since connecting would create it.
    """
    file = sqlite_file(url)
    # One stat, before there is an engine or anything else to wait on.
    if file is not None and not Path(file).is_file():  # noqa: ASYNC240
        raise DatabaseMissing(f"no database at {describe(url)}; {CREATE_HINT}")
    engine = create_engine(url)
    try:
        current = await current_revision(engine)
        head = head_revision()
        if current is None:
            raise DatabaseMissing(f"the database at {describe(url)} has no schema; {CREATE_HINT}")
        if current != head:
            raise DatabaseMissing(
                f"the database at {describe(url)} is at revision {current}, this version needs "
                f"{head}; bring it there with `notifier db upgrade`"
            )
        yield engine
    finally:
        await engine.dispose()


def make_parent_directory(url: str) -> None:
    """``run`` and ``db upgrade`` may create where the database goes; nothing else does."""
    file = sqlite_file(url)
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)


async def sync_configuration(engine: AsyncEngine, settings: Settings, now: datetime) -> WatchSync:
    """Make the database's config-sourced watches and subscriptions match the file.

    Replicas starting together would both insert the same new entries: one at a time.
    """
    async with exclusive(engine, CONFIG_SYNC_LOCK):
        synced = await sync_config_watches(engine, [w.entry() for w in settings.watch], now)
        await sync_config_subscriptions(engine, [s.entry() for s in settings.subscription], now)
    return synced


async def upgrade_and_sync(settings: Settings, now: datetime) -> tuple[SchemaUpgrade, WatchSync]:
    """``db upgrade``: the schema at head and the file's entries in it, so that read commands
    show the configuration's watches and subscriptions before the first ``run``."""
    make_parent_directory(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        schema = await upgrade(engine)
        synced = await sync_configuration(engine, settings, now)
    finally:
        await engine.dispose()
    return schema, synced
