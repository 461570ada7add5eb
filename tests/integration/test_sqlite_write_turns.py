"""SQLite transactions of one process wait their turn in order, not in SQLite's busy handler.

Each test sets the busy timeout to zero on the engine's connections, so a transaction that
reached SQLite while another held the write lock would fail at once with "database is locked":
these pass only because the engine queues its own transactions. Each also checks that the turn
comes back however a transaction ends, since a turn never given back would stop them all.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.engine import create_engine


@pytest.fixture
async def impatient(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An SQLite engine whose connections never wait in SQLite's busy handler."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (0)"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def increment(engine: AsyncEngine, hold: float = 0.0) -> None:
    """Read, wait a while holding the transaction, write: a lost update if two overlapped."""
    async with engine.begin() as conn:
        n = (await conn.execute(text("SELECT n FROM counter"))).scalar_one()
        await asyncio.sleep(hold)
        await conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})


async def two_at_once(engine: AsyncEngine) -> None:
    """Two transactions on two connections: a turn kept by the pool's idle connection would
    hold the second one up for good (the first may reuse that connection, turn and all)."""
    await asyncio.wait_for(
        asyncio.gather(increment(engine, hold=0.01), increment(engine, hold=0.01)), timeout=5
    )


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        n: int = (await conn.execute(text("SELECT n FROM counter"))).scalar_one()
        return n


async def test_concurrent_transactions_of_one_process_each_get_the_write_lock_in_turn(
    impatient: AsyncEngine,
) -> None:
    await asyncio.gather(*(increment(impatient, hold=0.005) for _ in range(20)))

    assert await count(impatient) == 20


async def test_a_transaction_that_fails_gives_its_turn_back(impatient: AsyncEngine) -> None:
    with pytest.raises(OperationalError, match="no such table"):
        async with impatient.begin() as conn:
            await conn.execute(text("UPDATE missing SET n = 1"))

    await two_at_once(impatient)
    assert await count(impatient) == 2


async def test_a_transaction_cancelled_midway_gives_its_turn_back(impatient: AsyncEngine) -> None:
    started = asyncio.Event()

    async def stuck() -> None:
        async with impatient.begin() as conn:
            await conn.execute(text("UPDATE counter SET n = 100"))
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await started.wait()
    waiting = asyncio.create_task(increment(impatient))
    task.cancel()

    await asyncio.wait_for(waiting, timeout=5)
    assert await count(impatient) == 1  # the cancelled one was rolled back


async def test_a_wait_for_the_turn_cancelled_leaves_the_queue_working(
    impatient: AsyncEngine,
) -> None:
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with impatient.begin() as conn:
            await conn.execute(text("UPDATE counter SET n = n + 1"))
            holding.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await holding.wait()
    given_up = asyncio.create_task(increment(impatient))
    behind = asyncio.create_task(increment(impatient))
    await asyncio.sleep(0.05)
    given_up.cancel()
    release.set()

    await asyncio.wait_for(asyncio.gather(first, behind), timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert await count(impatient) == 2


async def test_an_invalidated_connection_gives_its_turn_back(impatient: AsyncEngine) -> None:
    async with impatient.connect() as conn:
        await conn.execute(text("UPDATE counter SET n = 100"))
        await conn.invalidate()

    await two_at_once(impatient)
    assert await count(impatient) == 2


async def test_another_process_holding_the_lock_fails_a_transaction_that_then_gives_its_turn_back(
    impatient: AsyncEngine, tmp_path: Path
) -> None:
    """Another process (the CLI beside the service) is SQLite's busy handler's business: with no
    busy timeout the transaction fails, naming the lock, and the next one runs once it is free."""
    await count(impatient)  # the schema exists
    other = sqlite3.connect(tmp_path / "turns.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        # Raised by the driver itself: BEGIN IMMEDIATE goes to it directly.
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await increment(impatient)
        other.execute("ROLLBACK")
    finally:
        other.close()

    await two_at_once(impatient)
    assert await count(impatient) == 2
