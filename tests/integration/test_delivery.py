"""Fault injection: the dispatcher, the real outbox (SQLite and PostgreSQL) and the real sinks
against the fake webhook receiver and fake Slack, with the dispatcher's clock moved by hand so
that retry delays are checked without waiting for them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.core.clock import utc_now
from notifier.core.retry import RetryPolicy
from notifier.core.status import COMPLETE, QUEUED, RUNNING
from notifier.core.subscriptions import Subscription
from notifier.dispatching.dispatcher import Dispatcher
from notifier.metrics import InstrumentedSink, Metrics
from notifier.notify.pacing import ChannelPacer
from notifier.store.outbox import retry_deliveries
from notifier.store.subscriptions import (
    enable_subscription,
    list_subscriptions,
    load_active_subscriptions,
    sync_config_subscriptions,
)
from notifier.store.watches import add_watch
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, event_ids, poll_once
from tests.support.clock import HandClock
from tests.support.dispatch import build_dispatcher, fake_slack_client
from tests.support.outbox import (
    ASID,
    SlackChannelDeliveries,
    WebhookDeliveries,
    deliveries,
    lifecycle,
    statuses,
    subscribe,
)

SLACK_TOKEN = "xoxb-delivery-test"
CHANNEL = "C0DELIVERY"
DISPATCHER_ERRORS = "notifier.dispatching.dispatcher"


@pytest.fixture
def webhook(
    engine: AsyncEngine,
    clock: HandClock,
    session: aiohttp.ClientSession,
    receiver: WebhookReceiver,
) -> WebhookDeliveries:
    return WebhookDeliveries(engine, clock, session, receiver)


@pytest.fixture
async def builds(
    engine: AsyncEngine, clock: HandClock, session: aiohttp.ClientSession
) -> AsyncIterator[SlackChannelDeliveries]:
    async with FakeSlack(token=SLACK_TOKEN) as slack:
        await subscribe(engine, "builds", slack_channel=CHANNEL)
        yield SlackChannelDeliveries(
            engine, clock, slack, fake_slack_client(slack, session), CHANNEL
        )


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def arrived(receiver: WebhookReceiver) -> list[tuple[int, str, str]]:
    """(image version, state, webhook-id) of each request, in arrival order."""
    return [
        (
            r.json["data"]["image_version_id"],
            r.json["data"]["current"]["state"],
            r.headers["webhook-id"],
        )
        for r in receiver.requests
    ]


async def test_429_retry_after_holds_the_next_attempt_back_at_least_that_long(
    webhook: WebhookDeliveries,
) -> None:
    await webhook.queued([1])
    webhook.receiver.respond_next(429, headers={"Retry-After": "120"})
    d = webhook.dispatcher()

    await d.dispatch_due()
    [pending] = await webhook.deliveries()
    assert (pending.status, pending.attempts) == ("pending", 1)
    assert pending.last_error is not None
    assert "answered 429" in pending.last_error
    assert pending.next_attempt_at >= webhook.clock.now + timedelta(seconds=120)

    webhook.clock.advance(119)
    await d.dispatch_due()
    assert len(webhook.receiver.requests) == 1

    webhook.clock.advance(2)
    await d.dispatch_due()
    [done] = await webhook.deliveries()
    assert (done.status, done.attempts, done.last_error) == ("delivered", 2, None)
    first, second = webhook.receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_500_then_success_is_delivered_on_the_retry(webhook: WebhookDeliveries) -> None:
    await webhook.queued([1])
    webhook.receiver.respond_next(500, body=b"oops")
    d = webhook.dispatcher()

    await d.dispatch_due()
    [failed] = await webhook.deliveries()
    assert failed.status == "pending"
    assert failed.last_error is not None
    assert "answered 500" in failed.last_error
    # The first retry comes within the first step of the schedule (5 s).
    assert failed.next_attempt_at <= webhook.clock.now + timedelta(seconds=5)

    webhook.clock.advance(5)
    await d.dispatch_due()
    [done] = await webhook.deliveries()
    assert (done.status, done.attempts) == ("delivered", 2)
    assert len(webhook.receiver.requests) == 2


async def test_sends_are_counted_by_outcome_with_the_latency_of_the_delivered(
    webhook: WebhookDeliveries,
) -> None:
    """The instrumented sink counts each send by outcome: failed (retried), rejected (dead at
    once) and delivered with its latency from the event being seen."""
    await webhook.queued([1, 2])
    webhook.receiver.respond_next(500, body=b"oops")
    webhook.receiver.respond_next(404, body=b"no such hook")
    metrics = Metrics()
    sink = InstrumentedSink("webhook", webhook.sink(), metrics, webhook.clock)
    d = build_dispatcher(webhook.engine, clock=webhook.clock, sinks={"webhook": sink})

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "notifier_deliveries_total", {"sink": "webhook", "outcome": outcome}
        )

    await d.dispatch_due()
    assert (count("failed"), count("rejected")) == (1, 1)
    webhook.clock.advance(5)
    await d.dispatch_due()
    assert count("delivered") == 1
    latency = {"sink": "webhook"}
    assert (
        metrics.registry.get_sample_value("notifier_delivery_latency_seconds_count", latency) == 1
    )
    # Seen at T0, delivered at T0 + 1 h 5 s by the dispatcher's clock.
    assert metrics.registry.get_sample_value(
        "notifier_delivery_latency_seconds_sum", latency
    ) == pytest.approx(3605)


async def test_timeout_then_success_is_delivered_on_the_retry(webhook: WebhookDeliveries) -> None:
    await webhook.queued([1])
    webhook.receiver.respond_next(204, delay=5.0)
    d = webhook.dispatcher(timeout=0.3)

    await d.dispatch_due()
    [failed] = await webhook.deliveries()
    assert failed.status == "pending"
    assert failed.last_error is not None
    assert "did not answer within 0.3 s" in failed.last_error

    webhook.clock.advance(5)
    await d.dispatch_due()
    [done] = await webhook.deliveries()
    assert (done.status, done.attempts) == ("delivered", 2)


async def test_permanent_webhook_error_is_dead_at_once_with_reason_and_one_log_line(
    webhook: WebhookDeliveries, caplog: pytest.LogCaptureFixture
) -> None:
    await webhook.queued([1])
    webhook.receiver.respond_next(404, body=b"no such hook")
    d = webhook.dispatcher()

    with caplog.at_level(logging.ERROR, logger=DISPATCHER_ERRORS):
        await d.dispatch_due()
        webhook.clock.advance(86400)
        await d.dispatch_due()

    [dead] = await webhook.deliveries()
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert dead.last_error is not None
    assert "answered 404: no such hook" in dead.last_error
    assert len(webhook.receiver.requests) == 1
    [line] = [r.getMessage() for r in caplog.records]
    assert "subscription 'chatops'" in line
    assert "answered 404: no such hook" in line
    assert f"notifier deliveries retry {dead.id}" in line


async def test_permanent_slack_error_is_dead_at_once_naming_what_to_fix(
    builds: SlackChannelDeliveries, caplog: pytest.LogCaptureFixture
) -> None:
    await builds.seen([QUEUED])
    builds.slack.fail_next("chat.postMessage", "not_in_channel")
    d = builds.dispatcher()

    with caplog.at_level(logging.ERROR, logger=DISPATCHER_ERRORS):
        await d.dispatch_due()

    [dead] = await builds.deliveries()
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert dead.last_error == f"Slack says not_in_channel: invite the bot to {CHANNEL}"
    [line] = [r.getMessage() for r in caplog.records]
    assert "subscription 'builds'" in line
    assert f"invite the bot to {CHANNEL}" in line


async def test_slack_429_waits_for_its_retry_after(builds: SlackChannelDeliveries) -> None:
    await builds.seen([QUEUED])
    # The channel's pacer on the same hand clock: the 30 s back-off passes when the clock
    # moves, as the delivery's retry does, instead of in real time.
    d = builds.dispatcher(pacer=ChannelPacer(1.0, clock=builds.clock.seconds))
    builds.slack.fail_next("chat.postMessage", "ratelimited", retry_after=30)

    await d.dispatch_due()
    [pending] = await builds.deliveries()
    assert pending.status == "pending"
    assert pending.next_attempt_at >= builds.clock.now + timedelta(seconds=30)
    builds.clock.advance(29)
    await d.dispatch_due()
    assert builds.slack.top_level_posts() == []
    builds.clock.advance(2)
    await d.dispatch_due()
    assert len(builds.slack.top_level_posts(CHANNEL)) == 1
    [done] = await builds.deliveries()
    assert (done.status, done.attempts) == ("delivered", 2)


async def test_410_gone_disables_the_subscription_until_enabled(
    webhook: WebhookDeliveries, caplog: pytest.LogCaptureFixture
) -> None:
    engine = webhook.engine
    await webhook.subscribe()
    await lifecycle(engine, [1])
    webhook.clock.now = T0 + timedelta(hours=3)
    webhook.receiver.respond_next(410)
    d = webhook.dispatcher()

    with caplog.at_level(logging.ERROR, logger=DISPATCHER_ERRORS):
        await d.dispatch_due()

    assert len(webhook.receiver.requests) == 1
    assert [(x.status, x.attempts) for x in await webhook.deliveries()] == [
        ("dead", 1),
        ("dead", 0),
        ("dead", 0),
    ]
    [view] = await list_subscriptions(engine)
    assert view.disabled_reason is not None
    assert "410 Gone" in view.disabled_reason
    assert not view.active
    assert await load_active_subscriptions(engine, {}) == []
    [line] = [r.getMessage() for r in caplog.records]
    assert "subscription 'chatops' disabled" in line
    assert "notifier subscription enable chatops" in line

    # A restart syncing the configuration does not bring it back; `enable` does.
    await webhook.subscribe()
    assert await load_active_subscriptions(engine, {}) == []
    await enable_subscription(engine, "chatops")
    [view] = await list_subscriptions(engine)
    assert (view.active, view.disabled_reason) == (True, None)


async def test_3xx_is_a_failure_and_is_not_followed(webhook: WebhookDeliveries) -> None:
    await webhook.queued([1])
    webhook.receiver.respond_next(307, headers={"Location": webhook.receiver.url + "/elsewhere"})
    await webhook.dispatcher().dispatch_due()

    [dead] = await webhook.deliveries()
    assert dead.status == "dead"
    assert dead.last_error is not None
    assert "redirects are not followed" in dead.last_error
    assert [r.path for r in webhook.receiver.requests] == ["/hook"]


async def test_receiver_down_for_a_while_then_back_gets_everything_in_order(
    engine: AsyncEngine, clock: HandClock, session: aiohttp.ClientSession
) -> None:
    async with WebhookReceiver() as first:
        url = first.url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    await subscribe(engine, webhook_url=url)
    await lifecycle(engine, [1, 2, 3])
    clock.now = T0 + timedelta(hours=3)
    d = build_dispatcher(engine, clock=clock, session=session)

    # Down: each image version's first delivery is tried and fails; nothing behind it is tried.
    for _ in range(3):
        await d.dispatch_due()
        clock.advance(1800)
    down = await deliveries(engine)
    assert {x.status for x in down} == {"pending"}
    assert sorted(x.attempts for x in down) == [0, 0, 0, 0, 0, 0, 3, 3, 3]
    assert all("could not connect" in (x.last_error or "") for x in down if x.attempts)

    async with WebhookReceiver(port=port) as back:
        clock.advance(7200)
        await d.dispatch_due()
        got = arrived(back)

    assert {x.status for x in await deliveries(engine)} == {"delivered"}
    for ivid in (1, 2, 3):
        states = [state for v, state, _ in got if v == ivid]
        assert states == ["Queued", "Running", "Complete"]
    assert len({webhook_id for _, _, webhook_id in got}) == 9


async def test_retrying_first_event_holds_back_its_image_version_only(
    webhook: WebhookDeliveries,
) -> None:
    """The first of three events for one image version fails twice; the receiver still sees the
    three in order, and another image version's events are not held up meanwhile."""
    receiver = webhook.receiver
    await webhook.subscribe()
    await lifecycle(webhook.engine, [1])
    await lifecycle_second_version(webhook.engine)
    webhook.clock.now = T0 + timedelta(hours=3)
    receiver.respond_next(500)  # image version 1, Queued: the first request made
    # One send at a time makes "the first request" image version 1's first event.
    d = webhook.dispatcher(max_concurrency=1)

    await d.dispatch_due()
    receiver.respond_next(500)
    webhook.clock.advance(5)
    await d.dispatch_due()
    # Image version 2 got all of its events while image version 1 was failing.
    assert [s for v, s, _ in arrived(receiver) if v == 2] == ["Queued", "Running", "Complete"]
    assert [s for v, s, _ in arrived(receiver) if v == 1] == ["Queued", "Queued"]

    webhook.clock.advance(300)
    await d.dispatch_due()
    got = [s for v, s, _ in arrived(receiver) if v == 1]
    assert got == ["Queued", "Queued", "Queued", "Running", "Complete"]
    queued_ids = {i for v, s, i in arrived(receiver) if v == 1 and s == "Queued"}
    assert len(queued_ids) == 1  # the same webhook-id on every retry
    assert {x.status for x in await webhook.deliveries()} == {"delivered"}


async def lifecycle_second_version(engine: AsyncEngine) -> None:
    ids = event_ids("evt_b")
    await add_watch(engine, ASID, 2, "build 2", "cli", T0)
    for step, state in enumerate([QUEUED, RUNNING, COMPLETE]):
        await poll_once(
            engine, statuses({2: state}), now=T0 + timedelta(hours=step, minutes=1), ids=ids
        )


async def test_slack_live_message_never_goes_back_to_an_older_state(
    builds: SlackChannelDeliveries,
) -> None:
    """Queued went dead, Running went out; Queued retried by hand later changes nothing shown."""
    slack = builds.slack
    await builds.seen([QUEUED, RUNNING])
    d = builds.dispatcher()  # its Slack sink renders the newest status, as the service's does
    slack.fail_next("chat.postMessage", "not_in_channel")
    await d.dispatch_due()
    [live] = slack.top_level_posts(CHANNEL)
    assert "Running" in live.args["text"]

    assert await retry_deliveries(builds.engine, builds.clock.now, all_dead=True) == 1
    await d.dispatch_due()

    ts = live.answer["ts"]
    assert "Running" in slack.messages[(CHANNEL, ts)].text
    assert slack.updates(CHANNEL) == []
    # Queued was the job's first sighting: the live message itself, so no thread line either.
    assert slack.thread_replies(ts) == []
    assert {x.status for x in await builds.deliveries()} == {"delivered"}


def replica(webhook: WebhookDeliveries, name: str, **options: Any) -> Dispatcher:
    """A dispatcher of replica ``name`` on the wall clock, whose 1.5 s lease a 10 s send
    outlasts unless its heartbeat extends it."""
    return webhook.dispatcher(timeout=10, clock=utc_now, owner=name, lease_seconds=1.5, **options)


async def test_a_send_slower_than_the_lease_keeps_its_lease_and_is_not_sent_twice(
    webhook: WebhookDeliveries,
) -> None:
    receiver = webhook.receiver
    await webhook.subscribe()
    await lifecycle(webhook.engine, [1], [QUEUED])
    receiver.respond_next(204, delay=4.0)

    slow, other = replica(webhook, "replica-slow"), replica(webhook, "replica-other")
    running = asyncio.create_task(slow.run())
    slow.wake()
    try:
        await until(lambda: bool(receiver.requests))
        await asyncio.sleep(2.5)  # past the first lease: the heartbeat has extended it
        [leased] = await webhook.deliveries()
        assert leased.lease_owner == "replica-slow"
        await other.dispatch_due()
        assert len(receiver.requests) == 1
        await until(lambda: slow.in_flight == 0)
    finally:
        slow.stop()
        await running
    [done] = await webhook.deliveries()
    assert (done.status, done.attempts, done.lease_owner) == ("delivered", 1, None)
    assert len(receiver.requests) == 1


async def test_a_delivery_failing_max_attempts_times_is_dead_with_why(
    webhook: WebhookDeliveries,
) -> None:
    await webhook.queued([1])
    for _ in range(3):
        webhook.receiver.respond_next(503)
    policy = RetryPolicy(schedule_seconds=(1, 2), max_attempts=3, max_age_seconds=86400)
    d = webhook.dispatcher(policy=policy)

    for _ in range(4):
        await d.dispatch_due()
        webhook.clock.advance(10)

    [dead] = await webhook.deliveries()
    assert (dead.status, dead.attempts) == ("dead", 3)
    assert dead.last_error is not None
    assert dead.last_error.endswith("answered 503 (gave up after 3 attempts)")
    assert len(webhook.receiver.requests) == 3


def image_versions_sent(receiver: WebhookReceiver) -> list[int]:
    """The image version of each request ``receiver`` got, in arrival order."""
    return [r.json["data"]["image_version_id"] for r in receiver.requests]


async def test_retry_after_slows_down_the_whole_receiver_not_other_subscriptions(
    webhook: WebhookDeliveries,
) -> None:
    receiver = webhook.receiver
    async with WebhookReceiver() as other:
        await sync_config_subscriptions(
            webhook.engine,
            [
                SubscriptionSettings(name="chatops", webhook_url=receiver.url).entry(),
                SubscriptionSettings(name="other", webhook_url=other.url).entry(),
            ],
            T0,
        )
        await lifecycle(webhook.engine, [1, 2], [QUEUED])
        webhook.clock.now = T0 + timedelta(hours=1)
        receiver.respond_next(429, headers={"Retry-After": "60"})
        # One send at a time: image version 1 to chatops is the first request made.
        d = webhook.dispatcher(max_concurrency=1)

        await d.dispatch_due()
        # chatops asked to slow down: image version 2 waits too; "other" is not held back.
        assert image_versions_sent(receiver) == [1]
        assert sorted(image_versions_sent(other)) == [1, 2]

        webhook.clock.advance(61)
        await d.dispatch_due()
        assert sorted(image_versions_sent(receiver)) == [1, 1, 2]
    assert {x.status for x in await webhook.deliveries()} == {"delivered"}


async def test_a_delivery_queued_behind_a_slow_send_keeps_its_lease_and_is_sent_once(
    webhook: WebhookDeliveries,
) -> None:
    receiver = webhook.receiver
    await webhook.subscribe()
    await lifecycle(webhook.engine, [1, 2], [QUEUED])
    receiver.respond_next(204, delay=3.0)

    # One slot: image version 2 waits in the queue behind the slow send.
    slow = replica(webhook, "replica-slow", max_concurrency=1)
    other = replica(webhook, "replica-other", max_concurrency=1)
    running = asyncio.create_task(slow.run())
    slow.wake()
    try:
        await until(lambda: bool(receiver.requests))
        await asyncio.sleep(2.0)  # past the first lease of both: the heartbeat extended them
        assert {d.lease_owner for d in await webhook.deliveries()} == {"replica-slow"}
        await other.dispatch_due()
        await until(lambda: slow.in_flight == 0)
    finally:
        slow.stop()
        await running
    assert sorted(image_versions_sent(receiver)) == [1, 2]
    assert [(d.status, d.attempts) for d in await webhook.deliveries()] == [("delivered", 1)] * 2


async def test_queued_deliveries_to_a_receiver_that_asks_to_slow_down_go_back_unattempted(
    webhook: WebhookDeliveries,
) -> None:
    await webhook.queued([1, 2, 3])
    webhook.receiver.respond_next(429, headers={"Retry-After": "60"})
    # One send slot: all three are claimed at once, 2 and 3 wait in the queue behind 1.
    d = webhook.dispatcher(max_concurrency=1)

    await d.dispatch_due()

    assert image_versions_sent(webhook.receiver) == [1]
    assert [(x.status, x.attempts, x.lease_owner) for x in await webhook.deliveries()] == [
        ("pending", 1, None),
        ("pending", 0, None),
        ("pending", 0, None),
    ]
    webhook.clock.advance(61)
    await d.dispatch_due()
    assert sorted(image_versions_sent(webhook.receiver)) == [1, 1, 2, 3]


async def test_stopping_records_every_send_that_went_out_and_gives_the_queued_rest_back(
    webhook: WebhookDeliveries,
) -> None:
    receiver = webhook.receiver
    await webhook.subscribe()
    await lifecycle(webhook.engine, list(range(1, 41)), [QUEUED])
    for _ in range(40):
        receiver.respond_next(204, delay=0.05)
    d = webhook.dispatcher(timeout=5, clock=utc_now, max_concurrency=2, owner="replica-stopping")
    running = asyncio.create_task(d.run())
    d.wake()
    await until(lambda: len(receiver.requests) >= 10)
    d.stop()
    await running

    sent = set(image_versions_sent(receiver))
    rows = await webhook.deliveries()
    assert 10 <= len(sent) < 40
    # What reached the receiver is recorded as delivered; what was only queued is pending again,
    # unattempted, with no lease to wait out.
    assert sorted((x.status, x.attempts, x.lease_owner) for x in rows) == sorted(
        [("delivered", 1, None)] * len(sent) + [("pending", 0, None)] * (40 - len(sent))
    )


async def test_a_send_that_went_out_is_recorded_soon_while_the_next_one_is_slow(
    webhook: WebhookDeliveries,
) -> None:
    """One slot, three deliveries, the second answered after 2 s: the first is recorded
    delivered while the second is still waiting, not once the queue has run dry (a crash
    meanwhile would send it again)."""
    receiver = webhook.receiver
    await webhook.queued([1, 2, 3])
    receiver.respond_next(204)
    receiver.respond_next(204, delay=2.0)
    running = asyncio.create_task(webhook.dispatcher(timeout=10, max_concurrency=1).dispatch_due())
    try:
        await until(lambda: len(receiver.requests) == 2)
        statuses: list[str] = []
        deadline = asyncio.get_running_loop().time() + 1.0
        while statuses[:1] != ["delivered"] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            statuses = [d.status for d in await webhook.deliveries()]
        assert statuses == ["delivered", "pending", "pending"]
        assert len(receiver.requests) == 2  # the second send is still under way
    finally:
        await running
    assert [d.status for d in await webhook.deliveries()] == ["delivered"] * 3


async def test_a_subscription_added_since_the_last_load_gets_its_delivery_at_once(
    webhook: WebhookDeliveries,
) -> None:
    receiver = webhook.receiver
    await webhook.queued([1])
    d = webhook.dispatcher()
    await d.dispatch_due()
    # A second subscription, then an event for both, well within the copy's age (a minute).
    both = [
        SubscriptionSettings(name="chatops", webhook_url=receiver.url).entry(),
        SubscriptionSettings(name="audit", webhook_url=receiver.url + "/audit").entry(),
    ]
    await sync_config_subscriptions(webhook.engine, both, T0)
    # Event ids of a second series, after lifecycle's evt_0001...
    later = event_ids("later")
    await poll_once(webhook.engine, statuses({1: RUNNING}), now=webhook.clock.now, ids=later)

    await d.dispatch_due()
    assert [(r.path, r.json["data"]["current"]["state"]) for r in receiver.requests] == [
        ("/hook", "Queued"),
        *sorted([("/hook", "Running"), ("/hook/audit", "Running")]),
    ]


async def test_subscriptions_are_loaded_once_per_age_and_a_changed_url_is_used_after_it(
    webhook: WebhookDeliveries,
) -> None:
    engine, clock, receiver = webhook.engine, webhook.clock, webhook.receiver
    loads = 0

    async def counted() -> list[Subscription]:
        nonlocal loads
        loads += 1
        return await load_active_subscriptions(engine, {})

    await webhook.queued([1, 2])
    d = webhook.dispatcher(load_subscriptions=counted, subscriptions_max_age=0.5)
    await d.dispatch_due()
    ids = event_ids("later")  # a second series, after lifecycle's evt_0001...
    await poll_once(engine, statuses({1: RUNNING, 2: QUEUED}), now=clock.now, ids=ids)
    await d.dispatch_due()
    assert (len(receiver.requests), loads) == (3, 1)  # two claims, one load

    await webhook.subscribe("/moved")
    await asyncio.sleep(0.5)
    clock.advance(60)  # both due again
    await poll_once(engine, statuses({1: RUNNING, 2: RUNNING}), now=clock.now, ids=ids)
    await d.dispatch_due()
    assert (receiver.requests[-1].path, loads) == ("/hook/moved", 2)
