"""Alembic environment.

In the service the migration runs on a connection we pass in (``config.attributes``); from the
``alembic`` command line it opens its own engine from ``NOTIFIER_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection

from notifier.store.engine import create_engine
from notifier.store.tables import Base

# No logging.config.fileConfig here: it would disable the service's loggers after a migration.
config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    url = os.environ.get("NOTIFIER_DATABASE_URL", "sqlite+aiosqlite:///notifier.db")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())
