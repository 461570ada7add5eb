"""The shared turns in the database: replicas taking turns of one key at once never get the same
moment, and a push holds every replica back. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.pacing import turns_ending
from notifier.store.engine import create_engine
from notifier.store.pacing import SqlPaceLedger


async def test_turns_taken_at_once_by_three_replicas_never_overlap(
    engine: AsyncEngine, database_url: str
) -> None:
    # Three engines: three replicas' connection pools on one database.
    others = [create_engine(database_url) for _ in range(2)]
    try:
        ledgers = [SqlPaceLedger(e) for e in (engine, *others)]
        interval = 0.1

        async def take(ledger: SqlPaceLedger, count: int) -> list[float]:
            end = await ledger.take("clanforge:acct", count, interval, 0.0, 1000.0)
            return turns_ending(end, count, interval)

        taken = await asyncio.gather(
            *(take(ledger, count) for ledger in ledgers for count in (1, 3, 5))
        )
    finally:
        for other in others:
            await other.dispose()

    moments = sorted(round(t, 6) for turns in taken for t in turns)
    assert moments == [round(1000.0 + i * interval, 6) for i in range(27)]


async def test_a_push_holds_back_the_next_turn_and_never_pulls_it_forward(
    engine: AsyncEngine,
) -> None:
    ledger = SqlPaceLedger(engine)
    await ledger.push("slack:C1", 1030.0)
    assert await ledger.take("slack:C1", 1, 1.0, 0.0, 1000.0) == 1031.0
    await ledger.push("slack:C1", 1010.0)  # earlier than what is already taken: no change
    assert await ledger.take("slack:C1", 1, 1.0, 0.0, 1000.0) == 1032.0
    # Keys are apart: another channel is free now.
    assert await ledger.take("slack:C2", 1, 1.0, 0.0, 1000.0) == 1001.0


async def test_an_idle_key_sends_its_burst_at_once_and_no_more(engine: AsyncEngine) -> None:
    ledger = SqlPaceLedger(engine)
    await ledger.take("k", 1, 0.5, 1.0, 900.0)
    end = await ledger.take("k", 4, 0.5, 1.0, 1000.0)
    assert turns_ending(end, 4, 0.5) == [999.0, 999.5, 1000.0, 1000.5]
