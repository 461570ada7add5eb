"""Cluster-wide mutual exclusion for start-up work that several replicas would otherwise race on.

On PostgreSQL a session advisory lock, held on a connection of its own for the duration; on
SQLite nothing is needed, since every write transaction starts with BEGIN IMMEDIATE and so runs
alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.engine import is_postgres

CONFIG_SYNC_LOCK = 0x636C6E73  # "clns"


@asynccontextmanager
async def exclusive(engine: AsyncEngine, key: int) -> AsyncIterator[None]:
    if not is_postgres(engine):
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            await conn.commit()
