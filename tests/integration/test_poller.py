"""The poll tick against the fake Clanforge and a real database: batching and what it writes."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.clanforge.client import ClanforgeClient
from notifier.config import SubscriptionSettings
from notifier.core.clock import utc_now
from notifier.core.lease import Lease
from notifier.core.poll_plan import PollPolicy
from notifier.core.status import FetchedStatus
from notifier.core.timing import DetectPolicy
from notifier.polling.poller import BatchTimings
from notifier.store.codec import event_from_row
from notifier.store.outbox import SqlOutbox
from notifier.store.polling import SqlWatchStore
from notifier.store.subscriptions import load_active_subscriptions, sync_config_subscriptions
from notifier.store.tables import EVENTS
from notifier.store.watches import add_watch, list_watches
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support.clock import HandClock
from tests.support.narrow import event_of
from tests.support.poller import (
    ASID,
    fake_client,
    make_all_due,
    make_poller,
    polled_once,
    watch_queued_jobs,
)


class Hindered:
    """The real client, with what a test puts in its way: a bug of ours that crashes the poll of
    one image version (``crash_on``), or an upstream that takes ``delay`` seconds to answer.
    ``fetched`` is set once a fetch has come back."""

    def __init__(
        self, client: ClanforgeClient, *, crash_on: int | None = None, delay: float = 0.0
    ) -> None:
        self._client = client
        self._crash_on = crash_on
        self._delay = delay
        self.fetched = asyncio.Event()

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        if image_version_id == self._crash_on:
            raise KeyError("a bug")
        if self._delay:
            await asyncio.sleep(self._delay)
        fetched = await self._client.fetch_status(
            account_service_id, image_version_id, known_digest
        )
        self.fetched.set()
        return fetched


async def test_each_batch_tells_the_observer_how_long_its_fetches_took_and_how_they_ended(
    engine: AsyncEngine,
    fake: FakeClanforge,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await watch_queued_jobs(engine, fake, 4)
    fake.forget(ASID, 2)  # deleted upstream: 404
    await add_watch(engine, ASID, 5, "build 5", "cli", utc_now())  # never known upstream
    batches: list[tuple[list[float], Counter[str]]] = []

    def observe(seconds: Sequence[float], outcomes: Counter[str]) -> None:
        batches.append((list(seconds), outcomes))

    crashing = Hindered(fake_client(session, fake), crash_on=4)
    # make_poller's batches of three: five watches are two batches.
    poller = make_poller(engine, session, fake, source=crashing, observe_fetches=observe)
    summary = await poller.tick()

    assert (summary.polled, summary.failed) == (5, 3)
    assert [len(seconds) for seconds, _ in batches] == [3, 2]
    assert all(0 < s < 10 for seconds, _ in batches for s in seconds)
    assert sum((outcomes for _, outcomes in batches), Counter()) == Counter(
        ok=2, not_found=2, internal_error=1
    )
    assert "polling image version 4 crashed" in caplog.text


async def test_each_batch_tells_the_observer_how_long_each_of_its_phases_took(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    await watch_queued_jobs(engine, fake, 5)
    batches: list[BatchTimings] = []
    slow = Hindered(fake_client(session, fake), delay=0.05)
    # make_poller's batches of three: five watches are two batches.
    poller = make_poller(engine, session, fake, source=slow, observe_batch=batches.append)
    started = time.perf_counter()
    await poller.tick()
    took = time.perf_counter() - started

    assert [b.watches for b in batches] == [3, 2]
    # Two fetches at a time: three watches wait for the slow upstream twice, two watches once.
    assert batches[0].fetch >= 0.1
    assert batches[1].fetch >= 0.05
    # First sightings: every batch claims, plans and writes statuses and events.
    assert all(b.claim > 0 and b.plan > 0 and b.write > 0 for b in batches)
    # The phases follow one another: together they fit in the tick.
    assert sum(b.claim + b.fetch + b.plan + b.write for b in batches) <= took


async def test_a_stopped_tick_writes_the_polls_it_made_and_leaves_the_rest_due(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    await watch_queued_jobs(engine, fake, 5)
    due_at = {w.image_version_id: w.next_poll_at for w in await list_watches(engine)}
    # One batch of five spread over the whole tick: a poll every 2 s, the last one 8 s in.
    spread = PollPolicy(interval_seconds=10, running_interval_seconds=10, spread=1.0)
    upstream = Hindered(fake_client(session, fake))
    poller = make_poller(
        engine, session, fake, claim_limit=5, batch_size=5, poll=spread, source=upstream
    )
    ticking = asyncio.create_task(poller.tick())
    await asyncio.wait_for(upstream.fetched.wait(), 5)
    poller.stop()
    # It does not wait out the 8 s spread: the tick ends once its fetches in flight do.
    summary = await asyncio.wait_for(ticking, 2)
    assert (await poller.tick()).polled == 0  # and no tick after a stop

    assert (summary.polled, summary.failed, summary.events) == (1, 0, 1)
    watches = {w.image_version_id: w for w in await list_watches(engine)}
    assert watches[1].status is not None
    assert watches[1].lease_owner is None
    for ivid in (2, 3, 4, 5):
        left = watches[ivid]
        assert (left.status, left.poll_errors, left.next_poll_at) == (None, 0, due_at[ivid])
        assert fake.polls(ASID, ivid) == 0
    # The service gives the leases back on its way out; another replica then polls the rest.
    await SqlWatchStore(engine).release("test")
    async with aiohttp.ClientSession() as session:
        other = make_poller(
            engine, session, fake, claim_limit=5, batch_size=5, poll=PollPolicy(spread=0)
        )
        assert (await other.tick()).polled == 4


async def test_a_claim_hands_out_the_events_the_poller_stored(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    """What the dispatcher sends is the stored event exactly (odd characters and all), the head
    of each image version's line first."""
    await sync_config_subscriptions(
        engine,
        [
            SubscriptionSettings(
                name="hook",
                webhook_url="http://127.0.0.1:9/hook",
                events=["imageversion.state_changed", "imageversion.failed"],
            ).entry()
        ],
        utc_now(),
    )
    replies = {
        1: status_reply(3),
        2: status_reply(4, 40, eta=utc_now() + timedelta(minutes=7)),
        3: status_reply(6, 80, error="Image locked by diffid 42 — «ошибка» <&>", failed=2),
    }
    for ivid, reply in replies.items():
        fake.set_status(ASID, ivid, reply)
        await add_watch(engine, ASID, ivid, f"build {ivid} ✓", "cli", utc_now())
    poller = make_poller(
        engine,
        session,
        fake,
        subscriptions=functools.partial(load_active_subscriptions, engine, {}),
    )
    summary = await poller.tick()

    # A state change each, and the failure's own event.
    assert summary.deliveries == summary.events == 4
    async with engine.connect() as conn:
        stored = [event_from_row(row) for row in await conn.execute(select(EVENTS))]

    claimed = await SqlOutbox(engine).claim_due(
        Lease("replica-a", utc_now() + timedelta(seconds=1), timedelta(minutes=1)), 10
    )
    # The head of each image version's line: its failure waits behind its state change.
    by_id = {stored_event.id: stored_event for stored_event in stored}
    assert len(claimed) == 3
    assert [c.subject for c in claimed] == [by_id[event_of(c).id] for c in claimed]
    assert {event_of(c).image_version_id for c in claimed} == {1, 2, 3}


async def test_a_second_tick_finds_nothing_due_and_polls_nothing(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    poller = await polled_once(engine, session, fake, 4)
    again = await poller.tick()

    assert again.polled == 0
    assert [fake.polls(ASID, ivid) for ivid in range(1, 5)] == [1, 1, 1, 1]


async def test_a_job_that_repeats_itself_past_the_stall_threshold_is_reported_stalled(
    engine: AsyncEngine, fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    start = utc_now()
    clock = HandClock(start)
    fake.set_status(ASID, 1, status_reply(4, 40))
    await add_watch(engine, ASID, 1, "build 1", "cli", start)
    detect = DetectPolicy(stall_after_seconds=600)
    poller = make_poller(engine, session, fake, clock=clock, detect=detect)
    polls = []
    for minutes in (0, 1, 9, 11, 12):  # the same reply every time
        clock.now = start + timedelta(minutes=minutes)
        await make_all_due(engine, clock.now)
        polls.append((await poller.tick()).events)
    async with engine.connect() as conn:
        events = (await conn.execute(select(EVENTS.c.type))).scalars().all()

    assert polls == [1, 0, 0, 1, 0]
    assert events == ["imageversion.state_changed", "imageversion.stalled"]


async def test_a_404_is_logged_once_by_the_line_that_says_the_watch_is_paused(
    engine: AsyncEngine,
    fake: FakeClanforge,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="notifier")
    await add_watch(engine, ASID, 77, "never known upstream", "cli", utc_now())
    poller = make_poller(engine, session, fake)
    await poller.tick()
    about_it = [r for r in caplog.records if "77" in r.getMessage() and r.levelname == "WARNING"]
    assert len(about_it) == 1, [r.getMessage() for r in about_it]
    assert "paused" in about_it[0].getMessage()
