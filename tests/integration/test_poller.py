"""The poll tick against the fake Clanforge and a real database: batching and what it writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.clanforge.client import ClanforgeClient
from notifier.config import PollSettings
from notifier.notify.subscription import Subscription
from notifier.polling.poller import Poller
from notifier.store.tables import WATCHES
from notifier.store.watches import add_watch, list_watches
from notifier.testing.fake_clanforge import FakeClanforge, status_reply

ASID = 1234


def utc_now() -> datetime:
    return datetime.now(UTC)


async def no_subscriptions() -> list[Subscription]:
    return []


@pytest.fixture
async def fake() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(record=False) as server:
        yield server


async def make_poller(
    engine: AsyncEngine,
    session: aiohttp.ClientSession,
    fake: FakeClanforge,
    *,
    claim_limit: int = 100,
    batch_size: int = 3,
) -> Poller:
    return Poller(
        engine,
        ClanforgeClient(session, fake.base_url, "ak", "sk"),
        no_subscriptions,
        poll=PollSettings(interval_seconds=30),
        max_concurrency=2,
        claim_limit=claim_limit,
        lease=timedelta(minutes=1),
        owner="test",
        clock=utc_now,
        on_committed=lambda: None,
        batch_size=batch_size,
    )


async def watch_queued_jobs(engine: AsyncEngine, fake: FakeClanforge, count: int) -> None:
    for ivid in range(1, count + 1):
        fake.set_status(ASID, ivid, status_reply(3))
        await add_watch(engine, ASID, ivid, f"build {ivid}", "cli", utc_now())


class Statements:
    """What the tick sent the database, from SQLAlchemy's own events."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sql: list[str] = []
        self.commits = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sql.append(" ".join(statement.split()).upper())

    def _on_commit(self, conn: Any) -> None:
        self.commits += 1

    def writes_to(self, table: str) -> list[str]:
        return [
            s
            for s in self.sql
            if s.startswith((f"UPDATE {table.upper()} ", f"INSERT INTO {table.upper()} "))
        ]


@pytest.mark.parametrize(("watches", "claim_limit", "polled"), [(7, 100, 7), (7, 5, 5)])
async def test_tick_polls_due_watches_in_batches_up_to_the_claim_limit(
    engine: AsyncEngine, fake: FakeClanforge, watches: int, claim_limit: int, polled: int
) -> None:
    await watch_queued_jobs(engine, fake, watches)
    async with aiohttp.ClientSession() as session:
        poller = await make_poller(engine, session, fake, claim_limit=claim_limit, batch_size=3)
        statements = Statements(engine)
        summary = await poller.tick()

    assert (summary.polled, summary.events, summary.failed) == (polled, polled, 0)
    assert sorted(fake.polls(ASID, ivid) for ivid in range(1, watches + 1)) == sorted(
        [0] * (watches - polled) + [1] * polled
    )
    seen = [w for w in await list_watches(engine) if w.status is not None]
    assert len(seen) == polled
    assert {w.status.state for w in seen if w.status is not None} == {"Queued"}
    # A claim and a write per batch of at most 3: the commits follow the batches, not the watches.
    batches = -(-polled // 3)
    assert statements.commits == 2 * batches


async def test_a_second_tick_finds_nothing_due_and_polls_nothing(
    engine: AsyncEngine, fake: FakeClanforge
) -> None:
    await watch_queued_jobs(engine, fake, 4)
    async with aiohttp.ClientSession() as session:
        poller = await make_poller(engine, session, fake)
        await poller.tick()
        again = await poller.tick()

    assert again.polled == 0
    assert [fake.polls(ASID, ivid) for ivid in range(1, 5)] == [1, 1, 1, 1]


async def test_a_poll_that_sees_no_change_writes_no_status_row(
    engine: AsyncEngine, fake: FakeClanforge
) -> None:
    await watch_queued_jobs(engine, fake, 4)
    async with aiohttp.ClientSession() as session:
        poller = await make_poller(engine, session, fake)
        await poller.tick()
        before = {w.id: w.status for w in await list_watches(engine)}
        await _make_all_due(engine)
        statements = Statements(engine)
        summary = await poller.tick()

    assert (summary.polled, summary.events) == (4, 0)
    assert statements.writes_to("job_status") == []
    assert statements.writes_to("events") == []
    assert {w.id: w.status for w in await list_watches(engine)} == before


async def _make_all_due(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(WATCHES).values(next_poll_at=utc_now()))
