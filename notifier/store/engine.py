"""The one place that builds the database engine, with what each backend needs to behave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import PoolResetState, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (sqlite+aiosqlite or postgresql+asyncpg)."""
    parsed = make_url(url)
    json_codec: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **json_codec)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Reset on return by _make_sqlite_transactions_explicit's hook, only when there is something
    # to roll back.
    engine = create_async_engine(url, pool_reset_on_return=None, **json_codec)
    _make_sqlite_transactions_explicit(engine)
    return engine


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
        # Straight to the driver: one trip to its thread, where a statement through SQLAlchemy
        # takes three (cursor, execute, close), each about 0.1 ms of wall time on a small VM.
        await_only(connection.connection.driver_connection.execute_fetchall("BEGIN IMMEDIATE"))

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, reset_state: PoolResetState) -> None:
        # The pool's own reset rolls back every connection it gets back, even one whose
        # transaction has just committed: one more trip to the driver's thread per transaction.
        # Only a transaction still open is rolled back here (sqlite3 knows without a trip).
        if reset_state.terminate_only or not getattr(reset_state, "asyncio_safe", True):
            return
        if record.driver_connection.in_transaction:
            dbapi_connection.rollback()


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
