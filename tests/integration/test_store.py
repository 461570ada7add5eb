"""The store on a real SQLite file and the real PostgreSQL: claims, the tick's one transaction,
outbox ordering, config sync."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta, timezone

import orjson
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.core.lease import Lease
from notifier.core.status import JobStatus
from notifier.store.codec import status_from_json, status_to_json
from notifier.store.engine import _json_text
from notifier.store.migrate import upgrade
from notifier.store.outbox import SqlOutbox, list_deliveries, retry_deliveries
from notifier.store.outbox_store import Delivered, Failed, Released
from notifier.store.subscriptions import (
    list_subscriptions,
    load_active_subscriptions,
    sync_config_subscriptions,
)
from notifier.store.tables import WATCHES, JobStatusRow
from notifier.store.watches import (
    ConfigWatch,
    WatchSync,
    add_watch,
    add_watch_owners,
    list_watches,
    sync_config_watches,
)
from tests.conftest import (
    T0,
    add_hand_watches,
    event_ids,
    make_status,
    poll_once,
)
from tests.support.narrow import event_of
from tests.support.rows import count_rows

LEASE = timedelta(seconds=60)


async def subscribe_webhook(engine: AsyncEngine, name: str = "chatops", **filters: object) -> None:
    await sync_config_subscriptions(
        engine,
        [SubscriptionSettings(name=name, webhook_url="https://hooks.test/x", **filters).entry()],
        T0,
    )


async def queued_deliveries(engine: AsyncEngine, image_version_ids: tuple[int, ...]) -> None:
    """A webhook subscription, and a Queued poll of each image version: one pending delivery
    each, in that order."""
    await subscribe_webhook(engine)
    for ivid in image_version_ids:
        await add_watch(engine, 1234, ivid, str(ivid), "cli", T0)
    await poll_once(engine, {ivid: make_status(3) for ivid in image_version_ids})


async def test_poll_writes_status_events_and_deliveries_together(engine: AsyncEngine) -> None:
    await subscribe_webhook(engine)
    await add_watch(engine, 1234, 567890, "EU fleet", "cli", T0)
    written = await poll_once(engine, {567890: make_status(3)})
    assert [e.type for p in written for e in p.events] == ["imageversion.state_changed"]
    [view] = await list_watches(engine)
    assert view.status == make_status(3)
    assert view.next_poll_at == T0 + timedelta(seconds=30)
    [delivery] = await list_deliveries(engine)
    assert (delivery.subscription, delivery.event_type, delivery.status) == (
        "chatops",
        "imageversion.state_changed",
        "pending",
    )


async def test_outbox_hands_out_one_delivery_per_key_in_event_order(engine: AsyncEngine) -> None:
    await subscribe_webhook(engine)
    await add_watch(engine, 1234, 1, "a", "cli", T0)
    await add_watch(engine, 1234, 2, "b", "cli", T0)
    ids = event_ids()
    await poll_once(engine, {1: make_status(3), 2: make_status(3)}, ids=ids)
    later = T0 + timedelta(seconds=30)
    await poll_once(engine, {1: make_status(4), 2: make_status(4)}, now=later, ids=ids)

    first = await SqlOutbox(engine).claim_due(Lease("replica-a", later, LEASE), 10)
    assert [(event_of(d).image_version_id, event_of(d).current.state) for d in first] == [
        (1, "Queued"),
        (2, "Queued"),
    ]
    # Image version 1's first delivery fails: its second waits; image version 2 moves on.
    await SqlOutbox(engine).record_outcomes(
        "replica-a",
        [
            Failed(first[0].id, "HTTP 500", later + timedelta(seconds=5)),
            Delivered(first[1].id, later),
        ],
    )
    second = await SqlOutbox(engine).claim_due(Lease("replica-a", later, LEASE), 10)
    assert [(event_of(d).image_version_id, event_of(d).current.state) for d in second] == [
        (2, "Running")
    ]
    retry = await SqlOutbox(engine).claim_due(
        Lease("replica-a", later + timedelta(seconds=6), LEASE), 10
    )
    assert [
        (event_of(d).image_version_id, event_of(d).current.state, d.attempts) for d in retry
    ] == [(1, "Queued", 1)]


async def test_dead_delivery_can_be_queued_again(engine: AsyncEngine) -> None:
    await subscribe_webhook(engine)
    await add_watch(engine, 1234, 1, "a", "cli", T0)
    await poll_once(engine, {1: make_status(6, error="boom")})
    claimed = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 10)
    await SqlOutbox(engine).record_outcomes(
        "replica-a", [Failed(d.id, "HTTP 410 Gone", None) for d in claimed]
    )
    dead = await list_deliveries(engine, status="dead")
    assert [d.last_error for d in dead] == ["HTTP 410 Gone"]
    assert await retry_deliveries(engine, T0, all_dead=True) == 1
    assert [d.status for d in await list_deliveries(engine)] == ["pending"]


async def test_config_sync_is_idempotent_and_retires_removed_entries(engine: AsyncEngine) -> None:
    watches = [
        ConfigWatch(account_service_id=1234, image_version_id=1, label="one"),
        ConfigWatch(account_service_id=1234, image_version_id=2, label="two"),
    ]
    await sync_config_watches(engine, watches, T0)
    await sync_config_watches(engine, watches, T0)
    await sync_config_watches(engine, [replace(watches[0], label="uno")], T0)
    views = {w.image_version_id: w for w in await list_watches(engine)}
    assert (views[1].label, views[1].active) == ("uno", True)
    assert (views[2].label, views[2].active) == ("two", False)

    await subscribe_webhook(engine, "a")
    await subscribe_webhook(engine, "a")
    assert [(s.name, s.active) for s in await list_subscriptions(engine)] == [("a", True)]
    await sync_config_subscriptions(engine, [], T0)
    assert [(s.name, s.active) for s in await list_subscriptions(engine)] == [("a", False)]
    assert await load_active_subscriptions(engine, {}) == []
    assert await count_rows(engine, JobStatusRow) == 0


async def test_upgrade_of_a_migrated_database_applies_nothing(engine: AsyncEngine) -> None:
    again = await upgrade(engine)
    assert not again.applied
    assert again.before == again.after is not None


async def test_config_sync_reports_what_it_changed(engine: AsyncEngine) -> None:
    first = [ConfigWatch(account_service_id=1, image_version_id=i, label="a") for i in (1, 2)]
    assert await sync_config_watches(engine, first, T0) == WatchSync(added=2, updated=0, retired=0)
    assert await sync_config_watches(engine, first, T0) == WatchSync(added=0, updated=0, retired=0)
    second = [ConfigWatch(account_service_id=1, image_version_id=1, label="b")]
    assert await sync_config_watches(engine, second, T0) == WatchSync(added=0, updated=1, retired=1)


async def test_config_sync_adopts_watches_added_by_hand_that_the_file_lists(
    engine: AsyncEngine,
) -> None:
    # More than one lookup's worth of keys, one of them paused by hand.
    await add_hand_watches(engine, range(1, 1201))
    async with engine.begin() as conn:
        await conn.execute(
            update(WATCHES).where(WATCHES.c.image_version_id == 7).values(active=False)
        )
    listed = [
        ConfigWatch(account_service_id=1234, image_version_id=ivid, label=f"file {ivid}")
        for ivid in range(1, 1101)
    ]

    synced = await sync_config_watches(engine, listed, T0)

    assert synced == WatchSync(added=0, updated=1100, retired=0)
    views = {w.image_version_id: w for w in await list_watches(engine)}
    assert len(views) == 1200
    assert (views[7].label, views[7].source, views[7].active) == ("file 7", "config", True)
    assert (views[1100].label, views[1100].source) == ("file 1100", "config")
    assert (views[1101].label, views[1101].source, views[1101].active) == (
        "by hand 1101",
        "cli",
        True,
    )
    assert await sync_config_watches(engine, listed, T0) == WatchSync(added=0, updated=0, retired=0)


async def test_a_batch_marked_delivered_at_once_skips_rows_another_replica_holds(
    engine: AsyncEngine,
) -> None:
    await queued_deliveries(engine, (1, 2, 3))
    mine = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 2)
    theirs = await SqlOutbox(engine).claim_due(Lease("replica-b", T0, LEASE), 10)
    assert len(mine) == 2
    assert len(theirs) == 1

    await SqlOutbox(engine).record_outcomes(
        "replica-a", [Delivered(d.id, T0) for d in mine + theirs]
    )

    by_status = {d.id: (d.status, d.attempts, d.lease_owner) for d in await list_deliveries(engine)}
    assert by_status == {
        mine[0].id: ("delivered", 1, None),
        mine[1].id: ("delivered", 1, None),
        theirs[0].id: ("pending", 0, "replica-b"),
    }


async def test_a_second_claim_at_the_same_moment_hands_out_nothing_already_held(
    engine: AsyncEngine,
) -> None:
    await queued_deliveries(engine, (1, 2, 3))

    first = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 2)
    # Same owner, same clock reading, so the same lease expiry: only the third is new.
    second = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 10)

    assert len(first) == 2
    assert [event_of(d).image_version_id for d in second] == [3]


async def test_a_released_delivery_is_claimable_again_with_its_attempts_unchanged(
    engine: AsyncEngine,
) -> None:
    await queued_deliveries(engine, (1,))
    [claimed] = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 10)

    await SqlOutbox(engine).record_outcomes("replica-a", [Released(claimed.id)])

    [row] = await list_deliveries(engine)
    assert (row.status, row.attempts, row.lease_owner, row.last_error) == ("pending", 0, None, None)
    [again] = await SqlOutbox(engine).claim_due(Lease("replica-b", T0, LEASE), 10)
    assert (again.id, again.attempts) == (claimed.id, 0)


async def test_outcomes_of_every_kind_recorded_in_one_batch(engine: AsyncEngine) -> None:
    await queued_deliveries(engine, (1, 2, 3, 4))
    one, two, three, four = await SqlOutbox(engine).claim_due(Lease("replica-a", T0, LEASE), 10)
    retry_at = T0 + timedelta(seconds=5)

    await SqlOutbox(engine).record_outcomes(
        "replica-a",
        [
            Delivered(one.id, T0),
            Failed(two.id, "HTTP 500", retry_at),
            Failed(three.id, "HTTP 404", None),
            Released(four.id),
        ],
    )

    rows = {d.id: d for d in await list_deliveries(engine)}
    assert [
        (rows[d.id].status, rows[d.id].attempts, rows[d.id].last_error, rows[d.id].lease_owner)
        for d in (one, two, three, four)
    ] == [
        ("delivered", 1, None, None),
        ("pending", 1, "HTTP 500", None),
        ("dead", 1, "HTTP 404", None),
        ("pending", 0, None, None),
    ]
    assert rows[one.id].delivered_at == T0
    assert rows[two.id].next_attempt_at == retry_at


@pytest.mark.parametrize(
    "status",
    [
        make_status(3),
        make_status(4, 55, eta=T0 + timedelta(minutes=3, microseconds=7)),
        replace(
            make_status(6, error='f\u00e4iled \u2603 "quoted"\n'),
            created=T0.astimezone(timezone(timedelta(hours=-5, minutes=-30))),
            started=T0.replace(microsecond=0),
            updated=None,
            eta_estimated=True,
        ),
        replace(make_status(None), state="Mystery", created=None, started=None),
    ],
)
def test_a_status_comes_back_from_the_json_column_as_it_went_in(status: JobStatus) -> None:
    assert status_from_json(orjson.loads(_json_text(status_to_json(status)))) == status


async def test_concurrent_owner_adds_to_one_watch_all_end_up_in_its_owners(
    engine: AsyncEngine,
) -> None:
    watch_id = await add_watch(engine, 1234, 501, "EU fleet", "slack", T0, owners=["<@U0>"])
    people = [f"<@U{n}>" for n in range(1, 9)]

    await asyncio.gather(*(add_watch_owners(engine, watch_id, [p]) for p in people))

    [watch] = await list_watches(engine)
    assert sorted(watch.owners) == sorted(["<@U0>", *people])
