"""The one place that builds the database engine, with what each backend needs to behave, and
says which backend it is: PostgreSQL or SQLite, and the insert each spells ON CONFLICT with."""

from __future__ import annotations

from typing import Any, TypeAlias

import orjson
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from notifier.store.file_modes import prepare_sqlite_file

SQLITE_BUSY_TIMEOUT_MS = 30_000

ConflictInsert: TypeAlias = postgresql.Insert | sqlite.Insert


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (sqlite+aiosqlite or postgresql+asyncpg)."""
    json_codec: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **json_codec)

    file = sqlite_file(url)
    if file is not None:
        prepare_sqlite_file(file)
    engine = create_async_engine(url, **json_codec)
    _make_sqlite_transactions_explicit(engine)
    return engine


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names, as the URL spells it; None for PostgreSQL and for an
    in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def _json_text(value: Any) -> str:
    """JSON columns' text: orjson, as every poll writes two statuses per event and every send
    reads them back; json.dumps took ten times as long. Keys that are not strings are written
    as strings, as json.dumps did."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _make_sqlite_transactions_explicit(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction.

    The sqlite3 driver's own transaction handling starts a deferred transaction lazily; one that
    reads and then writes can fail with SQLITE_BUSY_SNAPSHOT, which the busy timeout does not
    cover. Taking the write lock up front makes concurrent writers wait instead of fail.
    SQLAlchemy's documented recipe for pysqlite, which aiosqlite follows.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "postgresql"


def conflict_insert(bind: AsyncEngine | AsyncConnection, table: Table) -> ConflictInsert:
    """An INSERT into ``table`` that takes ON CONFLICT DO NOTHING / DO UPDATE: the same
    clause on both backends, built by each dialect's own insert."""
    return postgresql.insert(table) if is_postgres(bind) else sqlite.insert(table)


async def unreachable_because(engine: AsyncEngine) -> str | None:
    """None when the database answers a query now; otherwise why not, as the error's class
    name (what ``/readyz`` shows)."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return type(exc).__name__
    return None
