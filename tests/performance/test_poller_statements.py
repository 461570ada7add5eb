"""The poller's conversation with the database: commits per batch, the statements of a quiet
tick (no write of a status or event that did not change), and the query plans of every
statement that touches the watch table."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from notifier.store.tables import EVENTS, JOB_STATUS, EventRow
from notifier.store.watches import add_watch, list_watches
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.conftest import T0, make_status, poll_once
from tests.support.poller import (
    ASID,
    make_poller,
    polled_once,
    tick_when_due_again,
    watch_queued_jobs,
)
from tests.support.rows import count_rows
from tests.support.statements import Statements


@pytest.mark.parametrize(("watches", "claim_limit", "polled"), [(7, 100, 7), (7, 5, 5)])
async def test_tick_polls_due_watches_in_batches_up_to_the_claim_limit(
    engine: AsyncEngine,
    fake: FakeClanforge,
    session: aiohttp.ClientSession,
    watches: int,
    claim_limit: int,
    polled: int,
) -> None:
    await watch_queued_jobs(engine, fake, watches)
    poller = make_poller(engine, session, fake, claim_limit=claim_limit, batch_size=3)
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


async def test_a_repeated_reply_is_settled_by_the_claim_and_one_update_per_batch(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    poller = await polled_once(engine, session, fake, 4, batch_size=3)
    started = utc_now()
    summary, statements = await tick_when_due_again(engine, poller)

    assert (summary.polled, summary.events) == (4, 0)
    # Per batch (3 + 1 watches): the claim's UPDATE and SELECT, and one UPDATE of the schedules.
    # No statement loads a stored status: the repeated replies were settled without it.
    verbs = Counter(s.split()[0] for s in statements.sql if not s.startswith("BEGIN"))
    assert verbs == {"UPDATE": 4, "SELECT": 2}
    assert statements.writes_to("job_status") == []
    for watch in await list_watches(engine):
        assert watch.last_polled_at is not None
        assert watch.last_polled_at >= started
        assert watch.next_poll_at is not None
        assert watch.next_poll_at >= started + timedelta(seconds=30)
        assert watch.poll_errors == 0


async def test_no_statement_of_a_tick_scans_the_watch_table(
    sqlite_url: str, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    # SQLite plans by rule, not by table size, so its plan for a handful of rows is the plan for
    # 100,000: a statement that scans watches would make each batch's cost grow with the list.
    engine = create_engine(sqlite_url)
    try:
        await upgrade(engine)
        await watch_queued_jobs(engine, fake, 4)
        later = timedelta()
        async with aiohttp.ClientSession() as session:
            poller = make_poller(
                engine, session, fake, batch_size=3, clock=lambda: utc_now() + later
            )
            statements = Statements(engine)
            await poller.tick()  # first sightings: statuses, events
            fake.set_status(ASID, 1, status_reply(4))
            later = timedelta(minutes=5)
            await poller.tick()  # one change, three quiet repeats
        touching_watches = [
            (sql, binds) for sql, binds in statements.runnable if " watches" in sql.lower()
        ]
        assert len(touching_watches) >= 8
        async with engine.connect() as conn:
            plans = {
                sql: [
                    row[-1]
                    for row in (
                        await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", binds)
                    ).all()
                ]
                for sql, binds in touching_watches
            }
    finally:
        await engine.dispose()
    scans = {sql: plan for sql, plan in plans.items() if any("SCAN watches" in p for p in plan)}
    assert scans == {}


async def test_a_poll_that_sees_no_change_writes_no_status_row(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    poller = await polled_once(engine, session, fake, 4)
    before = {w.id: w.status for w in await list_watches(engine)}
    summary, statements = await tick_when_due_again(engine, poller)

    assert (summary.polled, summary.events) == (4, 0)
    assert statements.writes_to("job_status") == []
    assert statements.writes_to("events") == []
    assert {w.id: w.status for w in await list_watches(engine)} == before


async def test_the_same_meaning_in_other_bytes_is_no_news_either(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    await watch_queued_jobs(engine, fake, 1)
    # One reply, reused: status_reply stamps its times with the clock's second, and a second
    # boundary between two calls would be a real change of meaning.
    reply = status_reply(3)
    fake.set_status(ASID, 1, reply)
    poller = make_poller(engine, session, fake)
    await poller.tick()
    fake.set_status(ASID, 1, {**reply, "servertime": 1})  # a new field
    summary, statements = await tick_when_due_again(engine, poller)

    assert (summary.polled, summary.events) == (1, 0)
    assert statements.writes_to("job_status") == []
    assert statements.writes_to("events") == []


async def test_a_status_stored_without_a_digest_gets_one_on_its_next_poll(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    poller = await polled_once(engine, session, fake, 2)
    async with engine.begin() as conn:  # as rows written before digests were
        await conn.execute(update(JOB_STATUS).values(reply_digest=None))
    first, backfill = await tick_when_due_again(engine, poller)
    second, settled = await tick_when_due_again(engine, poller)
    async with engine.connect() as conn:
        digests = (await conn.execute(select(JOB_STATUS.c.reply_digest))).scalars().all()
        events = (await conn.execute(select(EVENTS.c.type))).scalars().all()

    assert (first.events, second.events) == (0, 0)
    assert len(backfill.writes_to("job_status")) == 1  # one executemany for both rows
    assert all(d is not None and len(d) == 16 for d in digests)
    assert settled.writes_to("job_status") == []
    assert events == ["imageversion.state_changed"] * 2  # the first sightings only


async def test_unchanged_poll_writes_no_status_row_and_no_event(engine: AsyncEngine) -> None:
    await add_watch(engine, 1234, 567890, "EU fleet", "cli", T0)
    await poll_once(engine, {567890: make_status(4, 40)})
    statements = Statements(engine)

    later = T0 + timedelta(seconds=10)
    await poll_once(engine, {567890: make_status(4, 40)}, now=later)

    assert statements.writes_to("job_status") == []
    assert await count_rows(engine, EventRow) == 1
    [view] = await list_watches(engine)
    assert view.last_polled_at == later
