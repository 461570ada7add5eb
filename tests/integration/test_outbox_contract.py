"""The outbox's promises, held by both implementations: the SQL one (SQLite and PostgreSQL)
and the in-memory one the dispatcher's unit tests run on. Each test runs on all three."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from notifier.config import SubscriptionSettings
from notifier.core.events import Event
from notifier.core.lease import Lease
from notifier.core.status import QUEUED, RUNNING
from notifier.store.engine import create_engine
from notifier.store.memory_outbox import InMemoryOutbox
from notifier.store.migrate import upgrade
from notifier.store.outbox import SqlOutbox, list_deliveries
from notifier.store.outbox_store import Delivered, Failed, Outbox, Released
from notifier.store.subscriptions import sync_config_subscriptions
from notifier.store.watches import add_watch
from tests.conftest import T0, event_ids, make_event, make_status, poll_once

LEASE = timedelta(seconds=30)
SECOND = T0 + timedelta(minutes=10)
"""When the second delivery of each watch (Running) is queued."""
WATCHES = (1, 2, 3)
Row = tuple[str, int, str | None]
"""A delivery as these tests compare it: status, attempts, lease owner."""


@dataclass
class Subject:
    outbox: Outbox
    rows: Callable[[], Awaitable[dict[int, Row]]]
    """Every delivery by id."""


@pytest.fixture
async def subject(store_url: str | None) -> AsyncIterator[Subject]:
    """Two deliveries for each of three watches (Queued, then Running), all due at T0."""
    if store_url is None:
        memory = InMemoryOutbox()
        for step, (state, at) in enumerate(((QUEUED, T0), (RUNNING, SECOND))):
            for ivid in WATCHES:
                memory.add(1, ivid, _event(f"evt_{step}_{ivid}", ivid, state), at)

        async def memory_rows() -> dict[int, Row]:
            return {d.id: (d.status, d.attempts, d.lease_owner) for d in memory.deliveries.values()}

        yield Subject(memory, memory_rows)
        return
    engine = create_engine(store_url)
    try:
        await upgrade(engine)
        await sync_config_subscriptions(
            engine,
            [SubscriptionSettings(name="chatops", webhook_url="https://hooks.test/x").entry()],
            T0,
        )
        for ivid in WATCHES:
            await add_watch(engine, 1234, ivid, f"build {ivid}", "cli", T0)
        ids = event_ids()
        for state, at in ((QUEUED, T0), (RUNNING, SECOND)):
            await poll_once(engine, {ivid: make_status(state) for ivid in WATCHES}, at, ids)

        async def sql_rows() -> dict[int, Row]:
            return {
                d.id: (d.status, d.attempts, d.lease_owner) for d in await list_deliveries(engine)
            }

        yield Subject(SqlOutbox(engine), sql_rows)
    finally:
        await engine.dispose()


def _event(event_id: str, image_version_id: int, state: int) -> Event:
    return make_event(make_status(state, image_version_id=image_version_id), event_id=event_id)


def _watch(subject: object) -> int:
    assert isinstance(subject, Event)
    return subject.image_version_id


def state_of(subject: object) -> str | None:
    assert isinstance(subject, Event)
    return subject.current.state


async def test_a_claim_hands_out_the_head_of_each_key_oldest_first_up_to_its_limit(
    subject: Subject,
) -> None:
    outbox = subject.outbox
    first = await outbox.claim_due(Lease("a", T0, LEASE), 2)
    rest = await outbox.claim_due(Lease("a", T0, LEASE), 10)

    assert [state_of(d.subject) for d in first + rest] == ["Queued"] * 3
    assert [d.id for d in first + rest] == sorted(d.id for d in first + rest)
    assert len({d.id for d in first + rest}) == 3
    assert (
        await outbox.claim_due(Lease("b", T0, LEASE), 10) == []
    )  # all leased, the rest behind them


async def test_outcomes_change_only_what_the_owner_still_leases(subject: Subject) -> None:
    outbox = subject.outbox
    claimed = {_watch(d.subject): d for d in await outbox.claim_due(Lease("a", T0, LEASE), 10)}
    one, two, three = claimed[1], claimed[2], claimed[3]
    retry_at = SECOND + timedelta(seconds=5)

    await outbox.record_outcomes(
        "a", [Delivered(one.id, T0), Failed(two.id, "HTTP 500", retry_at), Released(three.id)]
    )
    await outbox.record_outcomes("b", [Failed(one.id, "not theirs", None)])

    rows = await subject.rows()
    assert [rows[d.id] for d in (one, two, three)] == [
        ("delivered", 1, None),
        ("pending", 1, None),
        ("pending", 0, None),
    ]
    # Watch 1 moves on to its Running delivery; watch 2 waits for its retry; 3 is due again.
    again = await outbox.claim_due(Lease("b", SECOND, LEASE), 10)
    assert sorted((_watch(d.subject), state_of(d.subject)) for d in again) == [
        (1, "Running"),
        (3, "Queued"),
    ]
    assert three.id in {d.id for d in again}
    [retried] = await outbox.claim_due(Lease("b", retry_at, LEASE), 10)
    assert (retried.id, retried.attempts) == (two.id, 1)


async def test_an_extended_lease_outlives_the_first_and_a_released_one_is_free_at_once(
    subject: Subject,
) -> None:
    outbox = subject.outbox
    held = await outbox.claim_due(Lease("a", T0, LEASE), 2)
    await outbox.extend_leases("a", [held[0].id], T0 + 3 * LEASE)

    later = T0 + 2 * LEASE  # past the first lease, within the extended one
    taken_over = {d.id for d in await outbox.claim_due(Lease("b", later, LEASE), 10)}
    # The lapsed lease and the watch nobody had claimed; not the one still held.
    assert held[1].id in taken_over
    assert held[0].id not in taken_over
    assert len(taken_over) == 2

    await outbox.release_leases("b")
    assert {owner for _, _, owner in (await subject.rows()).values()} == {"a", None}


async def test_skipped_subscriptions_are_left_alone(subject: Subject) -> None:
    assert await subject.outbox.claim_due(Lease("a", T0, LEASE), 10, skip_subscriptions=[1]) == []
    assert len(await subject.outbox.claim_due(Lease("a", T0, LEASE), 10)) == 3
