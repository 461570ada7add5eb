"""The Slack live message end to end: real database, real dispatcher, real slack-sdk, fake Slack.

Runs on SQLite and PostgreSQL (the ``engine`` fixture): where a live message is lives there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.events import Event
from notifier.core.live_messages import LiveMessageKey
from notifier.core.retry import RetryPolicy
from notifier.core.status import FAILED, QUEUED, RUNNING
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    Subscription,
)
from notifier.notify.pacing import ChannelPacer
from notifier.notify.slack import SlackSink
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.tables import DeliveryRow
from notifier.store.watches import add_watch
from notifier.testing.fake_slack import FakeSlack, StoredMessage
from tests.conftest import T0, make_event, make_status, seed_events, seed_subscription
from tests.support.dispatch import (
    build_dispatcher,
    fake_slack_client,
    fixed_subscriptions,
    slack_sink,
)

CHANNEL = "C0BUILDS"
OTHER = "C0OTHER"
LIMITS = {"header": 150, "section": 3000}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels={CHANNEL, OTHER}) as running:
        yield running


def _sink(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession, interval: float = 0
) -> SlackSink:
    """A sink as the service builds one; a new one per "process" in restart tests."""
    return slack_sink(
        engine, fake_slack_client(fake, session), utc_now, pacer=ChannelPacer(interval)
    )


async def _subscribe(engine: AsyncEngine, name: str, channel: str) -> Subscription:
    return await seed_subscription(
        engine, SlackChannelSubscription(id=0, name=name, channel=channel)
    )


async def _builds_channel_following_eu_fleet(engine: AsyncEngine) -> tuple[Subscription, int]:
    """The "builds" subscription of CHANNEL and the watch of EU fleet (567890) it follows."""
    builds = await _subscribe(engine, "builds", CHANNEL)
    return builds, await add_watch(engine, 1234, 567890, "EU fleet", "config", T0)


def _lifecycle(ivid: int = 567890, eid: str = "a") -> list[Event]:
    queued = make_status(QUEUED, 0, image_version_id=ivid)
    running = make_status(RUNNING, 40, image_version_id=ivid, eta=T0 + timedelta(minutes=9))
    failed = make_status(
        FAILED, 80, image_version_id=ivid, error="Image locked by diffid 42", failed_count=1
    )
    return [
        make_event(queued, event_id=f"evt_{eid}_{ivid}_1"),
        make_event(running, queued, event_id=f"evt_{eid}_{ivid}_2"),
        make_event(failed, running, event_id=f"evt_{eid}_{ivid}_3"),
    ]


async def _drain(engine: AsyncEngine, sink: SlackSink, subscriptions: list[Subscription]) -> None:
    """Run the real dispatcher until the outbox is empty (retries come back after 50 ms)."""

    dispatcher = build_dispatcher(
        engine,
        clock=utc_now,
        load_subscriptions=fixed_subscriptions(subscriptions),
        sinks={"slack_channel": sink},
        owner="test",
        # Events are dated T0 and retried by the real clock: an age limit would turn these
        # tests into a calendar (they broke once T0 was days old). Age has its own tests.
        policy=RetryPolicy(
            schedule_seconds=(0.05,) * 50, max_attempts=1000, max_age_seconds=math.inf
        ),
        max_concurrency=8,
    )
    while await _pending(engine):
        if not await dispatcher.dispatch_due():
            await asyncio.sleep(0.02)


async def _pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(DeliveryRow.id).where(DeliveryRow.status != "delivered"))
        ).all()
    return len(rows)


def _assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] in LIMITS:
            assert len(block["text"]["text"]) <= LIMITS[block["type"]]


async def test_full_lifecycle_posts_once_per_channel_updates_and_threads_each_change(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    builds = await _subscribe(engine, "builds", CHANNEL)
    other = await _subscribe(engine, "other", OTHER)
    watch = await add_watch(engine, 1234, 567890, "EU fleet, build 1.4.2", "config", T0)
    sink = _sink(engine, fake, session)
    queued, running, failed = _lifecycle()

    for event in (queued, running, failed):  # one poll tick each
        await seed_events(engine, watch, [builds.id, other.id], [event])
        await _drain(engine, sink, [builds, other])

    for channel in (CHANNEL, OTHER):
        [post] = fake.top_level_posts(channel)
        ts = post.answer["ts"]
        assert "Queued 0%" in post.args["text"]
        updates = fake.updates(channel)
        assert [u.args["ts"] for u in updates] == [ts, ts]
        assert "Running 40%" in updates[0].args["text"]
        assert "Failed 80%" in updates[1].args["text"]
        assert "Image locked by diffid 42" in updates[1].args["blocks"][2]["text"]["text"]
        replies = fake.thread_replies(ts)
        assert [r.args["text"].split(" · ")[0] for r in replies] == [
            ":gear: Queued → Running (40%)",
            ":x: Running → Failed (80%)",
        ]
        assert [bool(r.args.get("reply_broadcast")) for r in replies] == [False, True]
        for call in [post, *updates, *replies]:
            _assert_within_limits(call.args["blocks"])


async def test_restart_keeps_updating_the_same_message_and_its_thread(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    builds, watch = await _builds_channel_following_eu_fleet(engine)
    queued, running, failed = _lifecycle()
    await seed_events(engine, watch, [builds.id], [queued])
    await _drain(engine, _sink(engine, fake, session), [builds])

    # A new process (or another replica): nothing in memory, only the database.
    async with aiohttp.ClientSession() as second_session:
        await seed_events(engine, watch, [builds.id], [running, failed])
        await _drain(engine, _sink(engine, fake, second_session), [builds])

    [post] = fake.top_level_posts()
    assert {u.args["ts"] for u in fake.updates()} == {post.answer["ts"]}
    assert len(fake.thread_replies(post.answer["ts"])) == 2


async def test_deleted_message_is_replaced_and_the_new_one_kept_updated(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    builds, watch = await _builds_channel_following_eu_fleet(engine)
    sink = _sink(engine, fake, session)
    queued, running, failed = _lifecycle()
    await seed_events(engine, watch, [builds.id], [queued])
    await _drain(engine, sink, [builds])
    [first] = fake.top_level_posts()
    fake.delete_message(CHANNEL, first.answer["ts"])

    await seed_events(engine, watch, [builds.id], [running])
    await _drain(engine, sink, [builds])
    await seed_events(engine, watch, [builds.id], [failed])
    await _drain(engine, sink, [builds])

    _, fresh = fake.top_level_posts()
    assert "Running 40%" in fresh.args["text"]
    [update] = fake.updates()
    assert update.args["ts"] == fresh.answer["ts"]
    assert "Failed 80%" in update.args["text"]


async def test_post_that_succeeded_before_a_crash_is_found_again_not_duplicated(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    builds, watch = await _builds_channel_following_eu_fleet(engine)
    queued, running, _ = _lifecycle()
    # The crash: the marker was written, Slack took the post, its ts was never stored.
    await DatabaseLiveMessages(engine, utc_now).reserve(
        LiveMessageKey(builds.id, 1234, 567890), CHANNEL
    )
    orphan_ts = fake.next_ts()
    fake.add_message(
        StoredMessage(
            channel=CHANNEL,
            ts=orphan_ts,
            text="EU fleet: Queued 0%",
            blocks=[],
            thread_ts=None,
            extra={
                "metadata": {
                    "event_type": "clanforge_live_message",
                    "event_payload": {
                        "subscription_id": builds.id,
                        "account_service_id": 1234,
                        "image_version_id": 567890,
                    },
                }
            },
        )
    )

    await seed_events(engine, watch, [builds.id], [queued, running])
    await _drain(engine, _sink(engine, fake, session), [builds])

    assert fake.top_level_posts() == []
    assert [u.args["ts"] for u in fake.updates()] == [orphan_ts]
    assert len(fake.thread_replies(orphan_ts)) == 1


@pytest.mark.parametrize("history", ["empty", "missing_scope"])
async def test_interrupted_post_with_nothing_to_find_posts_a_fresh_message(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession, history: str
) -> None:
    builds, watch = await _builds_channel_following_eu_fleet(engine)
    await DatabaseLiveMessages(engine, utc_now).reserve(
        LiveMessageKey(builds.id, 1234, 567890), CHANNEL
    )
    if history == "missing_scope":
        fake.fail_next("conversations.history", "missing_scope")

    await seed_events(engine, watch, [builds.id], _lifecycle()[:1])
    await _drain(engine, _sink(engine, fake, session), [builds])

    [post] = fake.top_level_posts()
    assert "Queued 0%" in post.args["text"]
    assert fake.calls[0].method == "conversations.history"


@pytest.mark.parametrize("paced", [True, False], ids=["paced", "pacing-off"])
async def test_twenty_image_versions_at_once_arrive_in_order_without_a_429_storm(
    engine: AsyncEngine, session: aiohttp.ClientSession, paced: bool
) -> None:
    """Paced, (almost) nothing is refused; unpaced, the 429s are retried and order still holds."""
    async with FakeSlack(channels={CHANNEL}, post_interval_seconds=0.05) as fake:
        builds = await _subscribe(engine, "builds", CHANNEL)
        sink = _sink(engine, fake, session, interval=0.08 if paced else 0)
        watches = {
            ivid: await add_watch(engine, 1234, ivid, f"build {ivid}", "config", T0)
            for ivid in range(1000, 1020)
        }
        lifecycles = {ivid: _lifecycle(ivid) for ivid in watches}
        for ivid, watch in watches.items():  # the first tick sees all twenty Queued
            await seed_events(engine, watch, [builds.id], lifecycles[ivid][:1])
        await _drain(engine, sink, [builds])
        for ivid, watch in watches.items():  # the next tick sees all twenty Running then Failed
            await seed_events(engine, watch, [builds.id], lifecycles[ivid][1:])
        await _drain(engine, sink, [builds])

        posts = fake.top_level_posts()
        assert len(posts) == 20
        if paced:
            assert fake.rate_limited <= 2, "the pacer keeps almost every post inside the limit"
        else:
            assert fake.rate_limited > 0, "without pacing the fake must have refused some"
        for post in posts:
            ts = post.answer["ts"]
            label = post.args["text"].split(":")[0]
            replies = [r.args["text"].split(" · ")[0] for r in fake.thread_replies(ts)]
            assert replies == [":gear: Queued → Running (40%)", ":x: Running → Failed (80%)"]
            # Two state changes pending for one message: ONE chat.update, showing the newest.
            [update] = [u for u in fake.updates() if u.args["ts"] == ts]
            assert update.args["text"].startswith(f"{label}: Failed 80%")


async def test_refused_first_post_leaves_no_marker_to_search_for(
    engine: AsyncEngine, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    builds, watch = await _builds_channel_following_eu_fleet(engine)
    fake.fail_next("chat.postMessage", "internal_error", status=500)

    await seed_events(engine, watch, [builds.id], _lifecycle()[:1])
    await _drain(engine, _sink(engine, fake, session), [builds])

    assert [c.method for c in fake.calls] == ["chat.postMessage", "chat.postMessage"]
    assert (
        await DatabaseLiveMessages(engine, utc_now).get(LiveMessageKey(builds.id, 1234, 567890))
        is not None
    )
