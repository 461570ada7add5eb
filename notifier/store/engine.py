"""The one place that builds the database engine, with what each backend needs to behave."""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy import PoolResetState, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Where a connection that holds the process's SQLite write turn keeps it (its record's info).
_TURN: Final = "notifier_write_turn"


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

    turns = _WriteTurns()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        fairy = connection.connection
        if _TURN not in fairy.info:
            fairy.info[_TURN] = await_only(turns.take())
        # Straight to the driver: one trip to its thread, where a statement through SQLAlchemy
        # takes three (cursor, execute, close), each about 0.1 ms of wall time on a small VM.
        try:
            await_only(fairy.driver_connection.execute_fetchall("BEGIN IMMEDIATE"))
        except BaseException:
            _give_back(fairy.info)
            raise

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, reset_state: PoolResetState) -> None:
        # The pool's own reset rolls back every connection it gets back, even one whose
        # transaction has just committed: one more trip to the driver's thread per transaction.
        # Only a transaction still open is rolled back here (sqlite3 knows without a trip).
        try:
            safe = not reset_state.terminate_only and getattr(reset_state, "asyncio_safe", True)
            if safe and record.driver_connection.in_transaction:
                dbapi_connection.rollback()
        finally:
            _give_back(record.info)

    # A connection dropped without being given back (invalidated mid-transaction, closed) must
    # not keep the turn: every later transaction of the process would wait for it.
    for name in ("invalidate", "soft_invalidate", "close", "detach"):
        event.listen(engine.sync_engine.pool, name, _give_back_on)


class _WriteTurns:
    """The process's queue for SQLite's one write lock, one per event loop.

    Every transaction starts with BEGIN IMMEDIATE, so only one runs at a time. A second one
    that finds the lock taken is left to SQLite's busy handler, which sleeps 1, 2, 5, 10 ms and
    more between tries: the dispatcher's claims, waiting so behind its own outcome writes, left
    its send slots empty for a quarter of a drain. Waiting here instead, in order, the next
    transaction starts the moment the previous connection is given back. Other processes (the
    CLI beside a running service) still meet the busy handler.

    A turn is held from BEGIN until the connection goes back to the pool, where every
    transaction of this code base ends (``engine.begin()``, or ``engine.connect()`` rolled back
    on return).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def take(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Lock]:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        if not lock.locked():
            await lock.acquire()  # free: taken at once
            return loop, lock
        # Bounded like SQLite's own wait, so that a turn never given back (a bug) slows every
        # transaction down to the busy timeout instead of stopping them all.
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                await lock.acquire()
        except TimeoutError:
            log.warning(
                "waited %d s for another transaction of this process to end; going ahead",
                SQLITE_BUSY_TIMEOUT_MS // 1000,
            )
            return loop, asyncio.Lock()  # a turn of its own: SQLite's busy handler decides
        return loop, lock


def _give_back(info: dict[str, Any]) -> None:
    turn = info.pop(_TURN, None)
    if turn is None:
        return
    loop, lock = turn
    if not lock.locked():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        lock.release()
    elif not loop.is_closed():
        # A connection collected by the garbage collector outside the loop's thread.
        loop.call_soon_threadsafe(lock.release)


def _give_back_on(_dbapi_connection: Any, record: Any, *_: Any) -> None:
    _give_back(record.info)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
