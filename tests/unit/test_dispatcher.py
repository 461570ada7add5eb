"""The dispatcher over the in-memory outbox, sending with the real webhook sink to the fake
receiver: its loop, its failure handling and its leases, without a database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import aiohttp

from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.live_refresh import WatchNow
from notifier.core.status import QUEUED, RUNNING
from notifier.core.subscriptions import Subscription
from notifier.dispatching.dispatcher import Dispatcher
from notifier.notify.sink import Sink
from notifier.store.memory_outbox import InMemoryOutbox, StoredDelivery
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, make_event, make_status, make_subscription
from tests.support.clock import HandClock
from tests.support.dispatch import build_dispatcher, fixed_subscriptions

OWNER = "replica-unit"


def event(event_id: str, image_version_id: int = 1, state: int = QUEUED) -> Event:
    return make_event(make_status(state, image_version_id=image_version_id), event_id=event_id)


def hook(subscription_id: int, url: str) -> Subscription:
    return make_subscription(subscription_id, url=url)


def dispatcher(
    outbox: InMemoryOutbox,
    clock: HandClock,
    subscriptions: list[Subscription],
    *,
    session: aiohttp.ClientSession | None = None,
    sinks: dict[str, Sink] | None = None,
    max_concurrency: int = 4,
) -> Dispatcher:
    """The webhook sink sends with ``session``; ``sinks`` are a test's own."""
    return build_dispatcher(
        outbox,
        clock=clock,
        load_subscriptions=fixed_subscriptions(subscriptions),
        session=session,
        sinks=sinks,
        owner=OWNER,
        max_concurrency=max_concurrency,
    )


@dataclass
class HeadAnswered:
    """Image version 1's Queued delivery sent once and answered, its Running one behind it."""

    outbox: InMemoryOutbox
    clock: HandClock
    dispatcher: Dispatcher
    head: StoredDelivery
    behind: StoredDelivery


async def head_answered(
    status: int, receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> HeadAnswered:
    """Both due an hour before the clock; one pass, the receiver answering the head ``status``."""
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    head = outbox.add(1, 1, event("evt_1"), T0)
    behind = outbox.add(1, 1, event("evt_2", state=RUNNING), T0)
    receiver.respond_next(status)
    d = dispatcher(outbox, clock, [hook(1, receiver.url)], session=session)
    await d.dispatch_due()
    return HeadAnswered(outbox, clock, d, head, behind)


def sent(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    return [
        (r.headers["webhook-id"], r.json["data"]["current"]["state"]) for r in receiver.requests
    ]


async def test_one_pass_sends_a_keys_deliveries_in_order_and_records_each(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    """Only the head of a key is claimed; its recorded outcome makes the next one due within
    the same pass."""
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    outbox.add(1, 1, event("evt_1", state=QUEUED), T0)
    outbox.add(1, 1, event("evt_2", state=RUNNING), T0)
    outbox.add(1, 2, event("evt_3", image_version_id=2), T0)
    d = dispatcher(outbox, clock, [hook(1, receiver.url)], session=session)

    assert await d.dispatch_due() == 3

    by_watch_1 = [(i, s) for i, s in sent(receiver) if i != "evt_3"]
    assert by_watch_1 == [("evt_1", "Queued"), ("evt_2", "Running")]
    assert len(receiver.requests) == 3
    assert [
        (x.status, x.attempts, x.delivered_at, x.lease_owner) for x in outbox.deliveries.values()
    ] == [("delivered", 1, clock.now, None)] * 3
    assert d.in_flight == 0


async def test_a_failed_send_is_retried_when_due_with_the_same_webhook_id(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    answered = await head_answered(503, receiver, session)
    clock, first, behind = answered.clock, answered.head, answered.behind

    assert (first.status, first.attempts, first.last_error) == (
        "pending",
        1,
        f"webhook {receiver.url.rsplit('/', 1)[0]} answered 503",
    )
    assert first.next_attempt_at <= clock.now + timedelta(seconds=5)
    assert (behind.status, behind.attempts) == ("pending", 0)  # held back behind its key's head

    clock.now += timedelta(seconds=5)
    await answered.dispatcher.dispatch_due()
    assert sent(receiver) == [("evt_1", "Queued"), ("evt_1", "Queued"), ("evt_2", "Running")]
    assert [(x.status, x.attempts) for x in (first, behind)] == [("delivered", 2), ("delivered", 1)]


async def test_410_disables_the_subscription_and_its_pending_deliveries_go_dead(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    answered = await head_answered(410, receiver, session)
    gone, behind = answered.head, answered.behind

    assert len(receiver.requests) == 1
    [(subscription_id, reason)] = answered.outbox.disabled.items()
    assert subscription_id == 1
    assert "410 Gone" in reason
    assert [(x.status, x.attempts) for x in (gone, behind)] == [("dead", 1), ("dead", 0)]
    assert gone.last_error == reason


async def test_a_receiver_asking_to_slow_down_gets_its_waiting_deliveries_back_unattempted(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    limited = [outbox.add(1, ivid, event(f"evt_{ivid}", ivid), T0) for ivid in (1, 2, 3)]
    receiver.respond_next(429, headers={"Retry-After": "60"})
    # One slot: 2 and 3 wait for it behind 1.
    d = dispatcher(outbox, clock, [hook(1, receiver.url)], session=session, max_concurrency=1)

    await d.dispatch_due()

    assert [r.json["data"]["image_version_id"] for r in receiver.requests] == [1]
    assert [(x.attempts, x.lease_owner) for x in limited] == [(1, None), (0, None), (0, None)]
    assert limited[0].next_attempt_at >= clock.now + timedelta(seconds=60)
    clock.now += timedelta(seconds=61)
    await d.dispatch_due()
    assert sorted(r.json["data"]["image_version_id"] for r in receiver.requests) == [1, 1, 2, 3]


async def test_a_delivery_without_a_subscription_or_a_sink_is_dead_with_why(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    orphan = outbox.add(9, 1, event("evt_1"), T0)
    slack = outbox.add(2, 1, event("evt_2"), T0)
    channel = make_subscription(2, "slack_channel", name="builds", channel="C0BUILDS")
    d = dispatcher(outbox, clock, [hook(1, receiver.url), channel], session=session)

    await d.dispatch_due()

    assert (orphan.status, orphan.last_error) == ("dead", "subscription is gone or inactive")
    assert (slack.status, slack.last_error) == (
        "dead",
        "no sink for 'slack_channel' is configured",
    )
    assert receiver.requests == []


async def test_a_refresh_reaches_its_sink_as_a_stand_in_event_of_the_watchs_status(
    receiver: WebhookReceiver,
) -> None:
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    watch = WatchNow(1234, 7, "build 7", make_status(RUNNING, 40, image_version_id=7))
    refresh = outbox.add(1, 7, watch, T0)
    seen: list[Event] = []

    class Recording:
        async def deliver(self, event: Event, subscription: Subscription) -> None:
            seen.append(event)

        async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
            raise AssertionError("no digest was enqueued")

    channel = make_subscription(1, "slack_channel", name="builds", channel="C0BUILDS")
    d = dispatcher(outbox, clock, [channel], sinks={"slack_channel": Recording()})

    await d.dispatch_due()

    [stand_in] = seen
    assert (stand_in.id, stand_in.type, stand_in.current) == (
        f"refresh-{refresh.id}",
        "internal.live_refresh",
        watch.status,
    )
    assert refresh.status == "delivered"


async def test_stopping_gives_back_what_waits_for_a_slot_and_records_what_went_out(
    receiver: WebhookReceiver, session: aiohttp.ClientSession
) -> None:
    outbox, clock = InMemoryOutbox(), HandClock(T0 + timedelta(hours=1))
    rows = [outbox.add(1, ivid, event(f"evt_{ivid}", ivid), T0) for ivid in range(1, 21)]
    for _ in rows:
        receiver.respond_next(204, delay=0.05)
    d = dispatcher(outbox, clock, [hook(1, receiver.url)], session=session, max_concurrency=2)
    running = asyncio.create_task(d.run())
    d.wake()
    deadline = asyncio.get_running_loop().time() + 10
    while len(receiver.requests) < 4:
        assert asyncio.get_running_loop().time() < deadline, "nothing went out"
        await asyncio.sleep(0.01)
    d.stop()
    await running

    went_out = {r.json["data"]["image_version_id"] for r in receiver.requests}
    assert 4 <= len(went_out) < 20
    assert sorted((x.status, x.attempts, x.lease_owner) for x in rows) == sorted(
        [("delivered", 1, None)] * len(went_out) + [("pending", 0, None)] * (20 - len(went_out))
    )
