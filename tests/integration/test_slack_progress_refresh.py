"""Progress/ETA-only changes refresh the Slack live message: real poller, dispatcher and sink.

Fake Clanforge answers the polls, fake Slack records the calls, the database is real (SQLite and
PostgreSQL). A refresh is an internal outbox row, never an event: webhooks and the events API
see nothing of it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.events import LIVE_REFRESH, Event
from notifier.core.lease import Lease
from notifier.core.live_refresh import WatchNow
from notifier.core.status import COMPLETE, RUNNING
from notifier.core.subscriptions import SlackChannelSubscription
from notifier.store.events import recent_events
from notifier.store.outbox import SqlOutbox
from notifier.store.tables import DeliveryRow
from tests.conftest import make_status, seed_subscription
from tests.support.api import running_api
from tests.support.live_refresh import (
    ASID,
    CHANNEL,
    ETA,
    IVID,
    LATE,
    SECRET,
    Harness,
    harness,
    pending,
    running_message_posted,
)

__all__ = ["harness"]  # the fixture, from tests/support


async def deliveries_of(engine: AsyncEngine, subscription_id: int) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(DeliveryRow)
            .where(DeliveryRow.subscription_id == subscription_id)
        )
    return int(count or 0)


async def test_progress_only_change_updates_the_live_message_without_a_reply(
    harness: Harness,
) -> None:
    ts = await running_message_posted(harness)

    await harness.poll(RUNNING, 45, eta=ETA + timedelta(minutes=3))
    await harness.drain()

    [update_call] = harness.slack.updates(CHANNEL)
    assert update_call.args["ts"] == ts
    assert "Running 45%" in update_call.args["text"]
    assert harness.slack.thread_replies(ts) == []
    assert len(harness.slack.top_level_posts(CHANNEL)) == 1


async def test_a_change_seen_while_a_refresh_is_being_sent_queues_another(
    harness: Harness,
) -> None:
    ts = await running_message_posted(harness)
    await harness.poll(RUNNING, 35)
    outbox = SqlOutbox(harness.engine)
    [claimed] = await outbox.claim_due(Lease("test", utc_now(), timedelta(seconds=30)), 10)
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
    ts = await running_message_posted(harness)

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
    await running_message_posted(harness)
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


async def test_a_channel_without_a_live_message_gets_no_refresh(harness: Harness) -> None:
    await running_message_posted(harness)
    late = await seed_subscription(
        harness.engine, SlackChannelSubscription(id=0, name="late", channel=LATE)
    )
    harness.subscriptions.append(late)

    await harness.poll(RUNNING, 55)

    assert await deliveries_of(harness.engine, late.id) == 0
    await harness.drain()
    assert harness.slack.posts(LATE) == []
    assert len(harness.slack.updates(CHANNEL)) == 1


async def test_a_refresh_for_a_message_not_posted_yet_sends_nothing(harness: Harness) -> None:
    builds = harness.subscriptions[0]
    refresh = Event(
        id="refresh-1",
        type=LIVE_REFRESH,
        occurred_at=utc_now(),
        account_service_id=ASID,
        image_version_id=IVID,
        label="EU fleet, build 1.4.2",
        previous=None,
        current=make_status(RUNNING, 40, image_version_id=IVID),
    )

    await harness.sink.deliver(refresh, builds)

    assert harness.slack.posts(CHANNEL) == []
    assert harness.slack.updates(CHANNEL) == []
