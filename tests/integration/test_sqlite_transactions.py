"""SQLite transactions of one process, each BEGIN IMMEDIATE: they take the write lock one after
the other (SQLite's busy handler waits for it), lose no update, and leave the lock free however
they end.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.engine import create_engine


@pytest.fixture
async def counter(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An SQLite engine, as the service builds it, over a table of one counter."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
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
    await asyncio.wait_for(
        asyncio.gather(increment(engine, hold=0.01), increment(engine, hold=0.01)), timeout=5
    )


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        n: int = (await conn.execute(text("SELECT n FROM counter"))).scalar_one()
        return n


async def test_concurrent_transactions_of_one_process_each_take_the_write_lock_in_turn(
    counter: AsyncEngine,
) -> None:
    await asyncio.gather(*(increment(counter, hold=0.005) for _ in range(20)))

    assert await count(counter) == 20


async def test_a_transaction_that_fails_leaves_the_lock_free(counter: AsyncEngine) -> None:
    with pytest.raises(OperationalError, match="no such table"):
        async with counter.begin() as conn:
            await conn.execute(text("UPDATE missing SET n = 1"))

    await two_at_once(counter)
    assert await count(counter) == 2


async def test_a_transaction_cancelled_midway_leaves_the_lock_free(counter: AsyncEngine) -> None:
    started = asyncio.Event()

    async def stuck() -> None:
        async with counter.begin() as conn:
            await conn.execute(text("UPDATE counter SET n = 100"))
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await started.wait()
    waiting = asyncio.create_task(increment(counter))
    task.cancel()

    await asyncio.wait_for(waiting, timeout=5)
    assert await count(counter) == 1  # the cancelled one was rolled back


async def test_a_transaction_cancelled_while_waiting_for_the_lock_leaves_the_others_working(
    counter: AsyncEngine,
) -> None:
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with counter.begin() as conn:
            await conn.execute(text("UPDATE counter SET n = n + 1"))
            holding.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await holding.wait()
    given_up = asyncio.create_task(increment(counter))
    behind = asyncio.create_task(increment(counter))
    await asyncio.sleep(0.05)
    given_up.cancel()
    release.set()

    await asyncio.wait_for(asyncio.gather(first, behind), timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert await count(counter) == 2


async def test_an_invalidated_connection_leaves_the_lock_free(counter: AsyncEngine) -> None:
    async with counter.connect() as conn:
        await conn.execute(text("UPDATE counter SET n = 100"))
        await conn.invalidate()

    await two_at_once(counter)
    assert await count(counter) == 2


async def test_a_transaction_waits_for_another_process_that_holds_the_lock(
    counter: AsyncEngine, tmp_path: Path
) -> None:
    """Another process (the CLI beside the service) holding the lock delays a transaction; the
    busy timeout lets it through once the lock is free."""
    await count(counter)  # the schema exists
    other = sqlite3.connect(tmp_path / "turns.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(increment(counter))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(waiting, timeout=5)
    finally:
        other.close()

    assert await count(counter) == 1
