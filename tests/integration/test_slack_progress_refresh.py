"""Progress/ETA-only changes refresh the Slack live message: real poller, dispatcher and sink.

Fake Clanforge answers the polls, fake Slack records the calls, the database is real (SQLite and
PostgreSQL). A refresh is an internal outbox row, never an event: webhooks and the events API
see nothing of it.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.events import LIVE_REFRESH, Event
from notifier.core.lease import Lease
from notifier.core.live_refresh import WatchNow
from notifier.core.retry import RetryPolicy
from notifier.core.status import COMPLETE, RUNNING
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    Subscription,
)
from notifier.polling.poller import DEFAULT_BATCH_SIZE
from notifier.store.events import recent_events
from notifier.store.outbox import SqlOutbox
from notifier.store.tables import WATCHES, DeliveryRow
from notifier.store.watches import add_watch
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import make_status, seed_builds_and_hook, seed_subscription
from tests.support.api import running_api
from tests.support.dispatch import build_dispatcher, fake_slack_client, slack_sink
from tests.support.poller import make_poller
from tests.support.statements import Statements

ASID = 1234
IVID = 567890
CHANNEL = "C0BUILDS"
LATE = "C0LATE"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
# Far enough out that small moves stay under the 600 s eta_changed step.
ETA = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


def _now() -> datetime:
    return datetime.now(UTC)


class Harness:
    """One replica's poller and dispatcher, stepped by hand: a tick, then a drain."""

    def __init__(
        self,
        engine: AsyncEngine,
        clanforge: FakeClanforge,
        slack: FakeSlack,
        session: aiohttp.ClientSession,
        subscriptions: list[Subscription],
        receiver: WebhookReceiver,
    ) -> None:
        self.engine = engine
        self.clanforge = clanforge
        self.slack = slack
        self.subscriptions = subscriptions
        self.receiver = receiver

        async def load() -> list[Subscription]:
            return self.subscriptions

        self.poller = make_poller(
            engine,
            session,
            clanforge,
            batch_size=DEFAULT_BATCH_SIZE,
            clock=_now,
            subscriptions=load,
        )
        self.sink = slack_sink(engine, fake_slack_client(slack, session), _now)
        self.dispatcher = build_dispatcher(
            engine,
            clock=_now,
            load_subscriptions=load,
            session=session,
            sinks={"slack_channel": self.sink},
            owner="test",
            # Events are dated T0 and retried by the real clock: an age limit would turn these
            # tests into a calendar (they broke once T0 was days old). Age has its own tests.
            policy=RetryPolicy(
                schedule_seconds=(0.05,) * 50, max_attempts=1000, max_age_seconds=math.inf
            ),
            max_concurrency=8,
        )

    async def poll(
        self, state_id: int, progress: int, eta: datetime = ETA, ivids: tuple[int, ...] = (IVID,)
    ) -> None:
        """Upstream now says this of each image version; all watches are due, one tick sees it."""
        for ivid in ivids:
            self.clanforge.set_status(ASID, ivid, status_reply(state_id, progress, eta=eta))
        async with self.engine.begin() as conn:
            await conn.execute(update(WATCHES).values(next_poll_at=_now()))
        await self.poller.tick()

    async def drain(self) -> None:
        while await pending(self.engine):
            if not await self.dispatcher.dispatch_due():
                await asyncio.sleep(0.02)


async def pending(engine: AsyncEngine, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
    if kind is not None:
        stmt = stmt.where(DeliveryRow.kind == kind)
    async with engine.connect() as conn:
        return int(await conn.scalar(stmt) or 0)


async def deliveries_of(engine: AsyncEngine, subscription_id: int) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(DeliveryRow)
            .where(DeliveryRow.subscription_id == subscription_id)
        )
    return int(count or 0)


@pytest.fixture
async def harness(engine: AsyncEngine) -> AsyncIterator[Harness]:
    async with (
        FakeClanforge(record=False) as clanforge,
        FakeSlack(channels={CHANNEL, LATE}) as slack,
        WebhookReceiver() as receiver,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        subscriptions = await seed_builds_and_hook(engine, CHANNEL, receiver.url, SECRET)
        await add_watch(engine, ASID, IVID, "EU fleet, build 1.4.2", "config", _now())
        yield Harness(engine, clanforge, slack, session, subscriptions, receiver)


async def _running_message_posted(harness: Harness) -> str:
    """First sighting at Running 30%: the live message is posted; returns its ts."""
    await harness.poll(RUNNING, 30)
    await harness.drain()
    [post] = harness.slack.top_level_posts(CHANNEL)
    assert "Running 30%" in post.args["text"]
    return str(post.answer["ts"])


async def test_progress_only_change_updates_the_live_message_without_a_reply(
    harness: Harness,
) -> None:
    ts = await _running_message_posted(harness)

    await harness.poll(RUNNING, 45, eta=ETA + timedelta(minutes=3))
    await harness.drain()

    [update_call] = harness.slack.updates(CHANNEL)
    assert update_call.args["ts"] == ts
    assert "Running 45%" in update_call.args["text"]
    assert harness.slack.thread_replies(ts) == []
    assert len(harness.slack.top_level_posts(CHANNEL)) == 1


async def test_progress_changes_while_a_refresh_is_pending_become_one_update_with_the_newest(
    harness: Harness,
) -> None:
    ts = await _running_message_posted(harness)
    writes = Statements(harness.engine)

    for progress in (35, 40, 47):  # three ticks, the dispatcher busy elsewhere meanwhile
        await harness.poll(RUNNING, progress)
    assert await pending(harness.engine, "refresh") == 1
    # One statement per tick queues (or merges) the refresh, whatever the number of watches.
    assert len(writes.inserts_into("deliveries")) == 3

    await harness.drain()
    [update_call] = harness.slack.updates(CHANNEL)
    assert update_call.args["ts"] == ts
    assert "Running 47%" in update_call.args["text"]
    assert harness.slack.thread_replies(ts) == []


async def test_a_change_seen_while_a_refresh_is_being_sent_queues_another(
    harness: Harness,
) -> None:
    ts = await _running_message_posted(harness)
    await harness.poll(RUNNING, 35)
    outbox = SqlOutbox(harness.engine)
    [claimed] = await outbox.claim_due(Lease("test", _now(), timedelta(seconds=30)), 10)
    assert isinstance(claimed.subject, WatchNow)

    await harness.poll(RUNNING, 40)  # seen while the claimed refresh is on its way

    # The claimed one no longer holds the slot, so the change is not merged into a send that
    # may already have rendered 35%.
    assert await pending(harness.engine, "refresh") == 2
    await outbox.release_leases("test")
    await harness.drain()
    last = harness.slack.updates(CHANNEL)[-1]
    assert last.args["ts"] == ts
    assert "Running 40%" in last.args["text"]


async def test_a_refresh_never_moves_the_message_back_behind_a_state_change(
    harness: Harness,
) -> None:
    ts = await _running_message_posted(harness)

    await harness.poll(RUNNING, 60)  # refresh queued
    await harness.poll(COMPLETE, 100)  # state change queued behind it
    await harness.drain()

    updates = harness.slack.updates(CHANNEL)
    # The refresh already renders the newest status; the state change only adds its reply.
    assert "Complete 100%" in updates[-1].args["text"]
    assert all("Running" not in u.args["text"] for u in updates)
    [reply] = harness.slack.thread_replies(ts)
    assert "Complete" in reply.args["text"]


async def test_progress_only_changes_reach_no_webhook_and_no_events_list(
    engine: AsyncEngine, harness: Harness
) -> None:
    await _running_message_posted(harness)
    hook = next(s for s in harness.subscriptions if s.kind == "webhook")
    events_before = await recent_events(engine, 100)
    hook_deliveries = await deliveries_of(engine, hook.id)

    for progress in (35, 40, 47):
        await harness.poll(RUNNING, progress)
    await harness.drain()

    assert len(harness.slack.updates(CHANNEL)) == 1
    assert await deliveries_of(engine, hook.id) == hook_deliveries == 1
    [payload] = harness.receiver.verified_payloads(SECRET)
    assert payload["type"] == "imageversion.state_changed"
    assert await recent_events(engine, 100) == events_before
    async with running_api(engine) as api:
        status, page = await api.call("GET", "/api/v1/events?limit=100")
    assert status == 200
    assert [e["type"] for e in page["items"]] == ["imageversion.state_changed"]


async def test_an_unchanged_poll_plans_no_refresh(harness: Harness) -> None:
    await _running_message_posted(harness)
    late = await seed_subscription(
        harness.engine, SlackChannelSubscription(id=0, name="late", channel=LATE)
    )
    harness.subscriptions.append(late)
    writes = Statements(harness.engine)

    await harness.poll(RUNNING, 30)  # the same as before

    assert writes.inserts_into("deliveries") == []
    assert await pending(harness.engine, "refresh") == 0
    await harness.drain()
    assert harness.slack.updates(CHANNEL) == []


async def test_a_channel_without_a_live_message_gets_no_refresh(harness: Harness) -> None:
    await _running_message_posted(harness)
    late = await seed_subscription(
        harness.engine, SlackChannelSubscription(id=0, name="late", channel=LATE)
    )
    harness.subscriptions.append(late)

    await harness.poll(RUNNING, 55)

    assert await deliveries_of(harness.engine, late.id) == 0
    await harness.drain()
    assert harness.slack.posts(LATE) == []
    assert len(harness.slack.updates(CHANNEL)) == 1


async def test_a_tick_queues_the_refreshes_of_all_its_watches_in_one_statement(
    harness: Harness,
) -> None:
    ivids = (IVID, IVID + 1, IVID + 2)
    for ivid in ivids[1:]:
        await add_watch(harness.engine, ASID, ivid, f"build {ivid}", "config", _now())
    await harness.poll(RUNNING, 30, ivids=ivids)
    await harness.drain()
    writes = Statements(harness.engine)

    await harness.poll(RUNNING, 50, ivids=ivids)

    assert len(writes.inserts_into("deliveries")) == 1
    assert await pending(harness.engine, "refresh") == 3
    await harness.drain()
    updates = harness.slack.updates(CHANNEL)
    assert len(updates) == 3
    assert all("Running 50%" in u.args["text"] for u in updates)


async def test_a_refresh_for_a_message_not_posted_yet_sends_nothing(harness: Harness) -> None:
    builds = harness.subscriptions[0]
    refresh = Event(
        id="refresh-1",
        type=LIVE_REFRESH,
        occurred_at=_now(),
        account_service_id=ASID,
        image_version_id=IVID,
        label="EU fleet, build 1.4.2",
        previous=None,
        current=make_status(RUNNING, 40, image_version_id=IVID),
    )

    await harness.sink.deliver(refresh, builds)

    assert harness.slack.posts(CHANNEL) == []
    assert harness.slack.updates(CHANNEL) == []
