"""The watch store's promises, driven by the real poller, on SQLite, PostgreSQL and in memory.

The same tests run over :class:`SqlWatchStore` (a real SQLite file, the real PostgreSQL) and
:class:`MemoryWatchStore`, so the poller's unit tests over memory stand for the service.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from notifier.core.lease import Lease
from notifier.core.poll_plan import PollPolicy
from notifier.core.schedule import SchedulePolicy
from notifier.core.status import COMPLETE, QUEUED, RUNNING, FetchedStatus, JobStatus
from notifier.core.subscriptions import Subscription
from notifier.core.upstream_errors import UNAVAILABLE, UpstreamError
from notifier.polling.budget import BudgetSchedule
from notifier.polling.poller import Poller
from notifier.store.engine import create_engine
from notifier.store.memory import MemoryWatchStore
from notifier.store.migrate import upgrade
from notifier.store.polling import SqlWatchStore
from notifier.store.tables import EVENTS, WATCHES
from notifier.store.watch_store import WatchStore
from notifier.store.watches import add_watch, list_watches
from tests.conftest import POLL, T0, hand_poller, make_status
from tests.support.clock import HandClock

LEASE = timedelta(seconds=60)
ASID = 1234


@dataclass(frozen=True, slots=True)
class View:
    """What a test reads back of a watch, from either store."""

    state: str | None
    next_poll_at: datetime | None
    poll_errors: int
    last_poll_error: str | None
    lease_owner: str | None
    last_polled_at: datetime | None


@dataclass
class Backend:
    """A store, and what a test does to it from outside the poller."""

    store: WatchStore
    add: Callable[[int, datetime], Awaitable[None]]
    views: Callable[[], Awaitable[dict[int, View]]]
    event_types: Callable[[], Awaitable[list[str]]]
    take_over: Callable[[Sequence[int], str, datetime], Awaitable[None]]
    """Lease these image versions' watches to another owner, as another replica's claim would."""


def _view(watch: Any) -> View:
    """A watch of either store (they share these attribute names) as the tests compare it."""
    return View(
        None if watch.status is None else watch.status.state,
        watch.next_poll_at,
        watch.poll_errors,
        watch.last_poll_error,
        watch.lease_owner,
        watch.last_polled_at,
    )


def memory_backend() -> Backend:
    store = MemoryWatchStore()

    async def add(ivid: int, due: datetime) -> None:
        store.add(ASID, ivid, f"build {ivid}", due)

    async def views() -> dict[int, View]:
        return {w.image_version_id: _view(w) for w in store.watches.values()}

    async def event_types() -> list[str]:
        return [e.type for e in store.events]

    async def take_over(ivids: Sequence[int], owner: str, until: datetime) -> None:
        for watch in store.watches.values():
            if watch.image_version_id in ivids:
                watch.lease_owner, watch.lease_until = owner, until

    return Backend(store, add, views, event_types, take_over)


@pytest.fixture
async def backend(store_url: str | None) -> AsyncIterator[Backend]:
    if store_url is None:
        yield memory_backend()
        return
    url = store_url
    engine = create_engine(url)
    await upgrade(engine)

    async def add(ivid: int, due: datetime) -> None:
        await add_watch(engine, ASID, ivid, f"build {ivid}", "cli", due)

    async def views() -> dict[int, View]:
        return {w.image_version_id: _view(w) for w in await list_watches(engine)}

    async def event_types() -> list[str]:
        async with engine.connect() as conn:
            return list((await conn.execute(select(EVENTS.c.type).order_by(EVENTS.c.id))).scalars())

    async def take_over(ivids: Sequence[int], owner: str, until: datetime) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                update(WATCHES)
                .where(WATCHES.c.image_version_id.in_(ivids))
                .values(lease_owner=owner, lease_until=until)
            )

    try:
        yield Backend(SqlWatchStore(engine), add, views, event_types, take_over)
    finally:
        await engine.dispose()


class Upstream:
    """Clanforge as the poller sees it: a reply (or a failure) per image version, each reply with
    the digest of what it says; ``gate``, when given, holds every answer until it is set."""

    def __init__(
        self,
        answers: Mapping[int, JobStatus | UpstreamError],
        gate: asyncio.Event | None = None,
    ) -> None:
        self.answers = dict(answers)
        self.gate = gate
        self.asked = asyncio.Event()
        self.known: list[bytes | None] = []

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        self.known.append(known_digest)
        self.asked.set()
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers[image_version_id]
        if isinstance(answer, UpstreamError):
            raise answer
        digest = hashlib.blake2b(repr(answer).encode(), digest_size=16).digest()
        return FetchedStatus(digest, None if digest == known_digest else answer)


async def no_subscriptions() -> Sequence[Subscription]:
    return []


def poller(
    backend: Backend,
    upstream: Upstream,
    clock: HandClock,
    owner: str = "replica-a",
    poll: PollPolicy = POLL,
) -> Poller:
    return hand_poller(
        backend.store, upstream, clock, subscriptions=no_subscriptions, owner=owner, poll=poll
    )


async def test_claim_takes_due_watches_once_until_the_lease_expires(backend: Backend) -> None:
    await backend.add(1, T0)
    await backend.add(2, T0 + timedelta(minutes=5))
    store = backend.store
    first = await store.claim_due(Lease("replica-a", T0, LEASE), 10, T0)
    again = await store.claim_due(Lease("replica-b", T0 + timedelta(seconds=1), LEASE), 10, T0)
    late = T0 + timedelta(seconds=61)
    after_lease = await store.claim_due(Lease("replica-b", late, LEASE), 10, late)
    assert [w.image_version_id for w in first.watches] == [1]
    assert first.lease_until == T0 + LEASE
    assert again.watches == []
    assert [w.image_version_id for w in after_lease.watches] == [1]


async def test_claim_takes_watches_due_by_the_look_ahead_and_leases_them_from_now(
    backend: Backend,
) -> None:
    """The poller claims what falls due before its next tick (see Poller._claim): due by then
    is taken, due later is not, and the lease runs from the claim, not from the look-ahead."""
    await backend.add(1, T0 + timedelta(seconds=5))
    await backend.add(2, T0 + timedelta(seconds=15))

    claim = await backend.store.claim_due(
        Lease("replica-a", T0, LEASE), 10, T0 + timedelta(seconds=10)
    )

    assert [(w.image_version_id, w.next_poll_at) for w in claim.watches] == [
        (1, T0 + timedelta(seconds=5))  # the poller waits for this moment
    ]
    assert claim.lease_until == T0 + LEASE
    later = T0 + timedelta(seconds=15)
    again = await backend.store.claim_due(Lease("replica-b", later, LEASE), 10, later)
    assert [w.image_version_id for w in again.watches] == [2]


async def test_claim_hands_out_due_watches_in_due_order_up_to_its_limit(backend: Backend) -> None:
    for ivid, seconds in ((1, 20), (2, 0), (3, 10), (4, 0)):
        await backend.add(ivid, T0 + timedelta(seconds=seconds))
    due_by = T0 + timedelta(seconds=30)
    first = await backend.store.claim_due(Lease("replica-a", T0, LEASE), 3, due_by)
    rest = await backend.store.claim_due(Lease("replica-a", T0, LEASE), 3, due_by)
    assert [w.image_version_id for w in first.watches] == [2, 4, 3]
    assert [w.image_version_id for w in rest.watches] == [1]


async def test_a_poll_writes_the_status_its_event_and_the_next_poll(backend: Backend) -> None:
    await backend.add(1, T0)
    clock = HandClock(T0)
    summary = await poller(backend, Upstream({1: make_status(3)}), clock).tick()

    assert (summary.polled, summary.events) == (1, 1)
    assert await backend.event_types() == ["imageversion.state_changed"]
    [view] = (await backend.views()).values()
    assert (view.state, view.next_poll_at, view.lease_owner) == (
        "Queued",
        T0 + timedelta(seconds=30),
        None,
    )


async def test_a_claimed_watch_comes_back_with_the_status_and_memory_its_last_poll_wrote(
    backend: Backend,
) -> None:
    await backend.add(1, T0)
    clock = HandClock(T0)
    await poller(backend, Upstream({1: make_status(4, 40)}), clock).tick()
    later = T0 + timedelta(seconds=10)
    claim = await backend.store.claim_due(Lease("replica-a", later, LEASE), 10, later)

    [watch] = await backend.store.load_memory(claim.watches)

    assert watch.previous is not None
    assert (watch.previous.state, watch.previous.progress, watch.previous.eta) == (
        "Running",
        40,
        None,
    )
    # Typed as declared, not the database's 0 and 1.
    assert watch.previous.eta_estimated is False
    assert watch.tracking is not None
    assert (watch.tracking.stalled, watch.tracking.overdue, watch.tracking.milestone) == (
        False,
        False,
        0,
    )
    assert watch.tracking.stalled is False


async def test_a_repeated_reply_writes_only_the_schedule(backend: Backend) -> None:
    await backend.add(1, T0)
    clock = HandClock(T0)
    upstream = Upstream({1: make_status(4, 40)})
    await poller(backend, upstream, clock).tick()
    clock.now = later = T0 + timedelta(seconds=10)
    summary = await poller(backend, upstream, clock).tick()

    assert (summary.polled, summary.events) == (1, 0)
    assert upstream.known[-1] is not None  # the reply came back unparsed
    assert await backend.event_types() == ["imageversion.state_changed"]
    [view] = (await backend.views()).values()
    assert (view.state, view.last_polled_at, view.next_poll_at) == (
        "Running",
        later,
        later + timedelta(seconds=10),
    )


async def test_a_terminal_state_stops_polling(backend: Backend) -> None:
    await backend.add(1, T0)
    clock = HandClock(T0)
    await poller(backend, Upstream({1: make_status(5, 100)}), clock).tick()
    [view] = (await backend.views()).values()
    assert view.next_poll_at is None
    later = T0 + timedelta(days=1)
    assert (
        await backend.store.claim_due(Lease("replica-a", later, LEASE), 10, later)
    ).watches == []


async def test_a_write_skips_watches_whose_lease_was_taken_over(backend: Backend) -> None:
    await backend.add(1, T0)
    clock = HandClock(T0)
    stuck = Upstream({1: make_status(3)}, gate=asyncio.Event())
    slow = asyncio.create_task(poller(backend, stuck, clock).tick())
    await asyncio.wait_for(stuck.asked.wait(), 5)
    # replica-a stalls past its lease; replica-b claims and polls the same watch.
    clock.now = T0 + timedelta(seconds=61)
    taken = await poller(backend, Upstream({1: make_status(4)}), clock, owner="replica-b").tick()
    assert stuck.gate is not None
    stuck.gate.set()
    late = await asyncio.wait_for(slow, 5)

    assert (taken.polled, late.polled, late.events) == (1, 0, 0)
    [view] = (await backend.views()).values()
    assert view.state == "Running"
    assert await backend.event_types() == ["imageversion.state_changed"]


async def test_a_mixed_batch_writes_exactly_the_watches_it_still_holds(backend: Backend) -> None:
    """Successes and failures alike: a watch taken over meanwhile is left alone, the others
    are written in full."""
    for ivid in (1, 2, 3, 4):
        await backend.add(ivid, T0)
    down = UpstreamError(UNAVAILABLE, "Clanforge is down")
    clock = HandClock(T0)
    upstream = Upstream(
        {1: make_status(4), 2: make_status(4), 3: down, 4: down}, gate=asyncio.Event()
    )
    ticking = asyncio.create_task(poller(backend, upstream, clock).tick())
    await asyncio.wait_for(upstream.asked.wait(), 5)
    clock.now = late = T0 + timedelta(seconds=61)
    await backend.take_over([2, 4], "replica-b", late + LEASE)
    assert upstream.gate is not None
    upstream.gate.set()
    summary = await asyncio.wait_for(ticking, 5)

    assert (summary.polled, summary.failed, summary.events) == (2, 1, 1)
    views = await backend.views()
    assert (views[1].state, views[1].poll_errors, views[1].lease_owner) == ("Running", 0, None)
    assert views[1].next_poll_at is not None
    assert views[1].next_poll_at > T0
    assert (views[3].poll_errors, views[3].last_poll_error, views[3].lease_owner) == (
        1,
        "Clanforge is down",
        None,
    )
    assert views[3].next_poll_at is not None
    assert views[3].next_poll_at > late
    for taken in (2, 4):
        assert (views[taken].state, views[taken].poll_errors) == (None, 0)
        assert (views[taken].lease_owner, views[taken].next_poll_at) == ("replica-b", T0)
    assert await backend.event_types() == ["imageversion.state_changed"]


async def test_released_leases_are_claimable_at_once(backend: Backend) -> None:
    await backend.add(1, T0)
    await backend.add(2, T0)
    store = backend.store
    await store.claim_due(Lease("replica-a", T0, LEASE), 1, T0)
    await store.claim_due(Lease("replica-b", T0, LEASE), 1, T0)
    await store.release("replica-a")
    views = await backend.views()
    assert sorted(v.lease_owner or "" for v in views.values()) == ["", "replica-b"]
    again = await store.claim_due(Lease("replica-c", T0, LEASE), 10, T0)
    assert len(again.watches) == 1


def budget_poller(
    backend: Backend,
    upstream: Upstream,
    clock: HandClock,
    poll: PollPolicy,
    slots: int,
    max_gap_seconds: float = 120.0,
) -> Poller:
    """The real poller with the budget-aware claim, ``slots`` polls a one-second tick."""
    return hand_poller(
        backend.store,
        upstream,
        clock,
        subscriptions=no_subscriptions,
        poll=poll,
        budget=BudgetSchedule(SchedulePolicy(max_gap_seconds=max_gap_seconds), slots, 1.0),
    )


async def test_over_budget_a_running_job_near_its_eta_goes_before_a_queued_one_just_polled(
    backend: Backend,
) -> None:
    """Due order would poll the Queued job first (due 10 s earlier); the budget of one poll
    goes to the Running job whose ETA window has opened."""
    poll = PollPolicy(interval_seconds=30, running_interval_seconds=90)
    clock = HandClock(T0)
    upstream = Upstream(
        {1: make_status(RUNNING, 40, eta=T0 + timedelta(seconds=100)), 2: make_status(QUEUED)}
    )
    await backend.add(1, T0)
    await backend.add(2, T0 + timedelta(seconds=50))
    plain = poller(backend, upstream, clock, poll=poll)
    await plain.tick()  # watch 1 Running, due again at T0 + 90
    clock.now = T0 + timedelta(seconds=50)
    await plain.tick()  # watch 2 Queued, due again at T0 + 80

    clock.now = T0 + timedelta(seconds=95)
    summary = await budget_poller(backend, upstream, clock, poll, slots=1).tick()

    views = await backend.views()
    assert summary.polled == 1
    assert views[1].last_polled_at == T0 + timedelta(seconds=95)
    assert views[2].last_polled_at == T0 + timedelta(seconds=50)


async def test_over_budget_a_job_running_long_before_it_was_first_seen_is_looked_for_sooner(
    backend: Backend,
) -> None:
    """Two Running jobs first seen together, both with an ETA 100 s on: the one upstream says
    started 15 minutes ago may finish any moment (a fifth of its run either side of the ETA);
    the one that started 10 s ago not for another minute. One poll goes to the first."""
    poll = PollPolicy(interval_seconds=30, running_interval_seconds=30)
    clock = HandClock(T0)
    eta = T0 + timedelta(seconds=100)
    long_run = replace(make_status(RUNNING, 85, eta=eta), started=T0 - timedelta(minutes=15))
    fresh_run = replace(make_status(RUNNING, 5, eta=eta), started=T0 - timedelta(seconds=10))
    upstream = Upstream({1: long_run, 2: fresh_run})
    for ivid in (1, 2):
        await backend.add(ivid, T0)
    await poller(backend, upstream, clock, poll=poll).tick()

    clock.now = T0 + timedelta(seconds=30)
    summary = await budget_poller(backend, upstream, clock, poll, slots=1).tick()

    views = await backend.views()
    assert summary.polled == 1
    assert views[1].last_polled_at == T0 + timedelta(seconds=30)
    assert views[2].last_polled_at == T0


async def test_over_budget_no_unfinished_watch_waits_longer_than_the_gap_bound(
    backend: Backend,
) -> None:
    """Four Running jobs past their ETA would take every poll of a two-poll budget; the gap
    bound still polls each of ten Queued jobs at least every 15 s."""
    poll = PollPolicy(interval_seconds=1, running_interval_seconds=1)
    clock = HandClock(T0)
    late = make_status(RUNNING, 90, eta=T0 - timedelta(seconds=60))
    upstream = Upstream({ivid: late if ivid <= 4 else make_status(QUEUED) for ivid in range(1, 15)})
    for ivid in range(1, 15):
        await backend.add(ivid, T0)
    await poller(backend, upstream, clock, poll=poll).tick()
    budget = budget_poller(backend, upstream, clock, poll, slots=2, max_gap_seconds=15)
    last = {ivid: T0 for ivid in range(1, 15)}
    longest = timedelta(0)
    running_polls = 0
    for second in range(1, 61):
        clock.now = T0 + timedelta(seconds=second)
        summary = await budget.tick()
        assert summary.polled == 2
        for ivid, view in (await backend.views()).items():
            if view.last_polled_at == clock.now:
                running_polls += ivid <= 4
                last[ivid] = clock.now
            longest = max(longest, clock.now - last[ivid])
    assert longest <= timedelta(seconds=15)
    # What the bound leaves goes to the jobs most likely to have finished.
    assert running_polls > 60


async def test_a_restarted_scheduler_learns_waits_and_runs_from_the_stored_state_changes(
    backend: Backend,
) -> None:
    """Two jobs seen Queued, then Running, then Complete by one process; the next process,
    started on the same database, learns their waits and runs from the events alone."""
    poll = PollPolicy(interval_seconds=1, running_interval_seconds=1)
    clock = HandClock(T0)
    upstream = Upstream({1: make_status(QUEUED), 2: make_status(QUEUED)})
    for ivid in (1, 2):
        await backend.add(ivid, T0)
    first = poller(backend, upstream, clock, poll=poll)
    for seconds, state in ((0, QUEUED), (60, RUNNING), (300, COMPLETE)):
        clock.now = T0 + timedelta(seconds=seconds)
        upstream.answers = {ivid: make_status(state, 100 * (state == COMPLETE)) for ivid in (1, 2)}
        await first.tick()

    restarted = BudgetSchedule(SchedulePolicy(), slots=1, tick_seconds=1.0)
    learnt = restarted.learn_past(await backend.store.recent_state_changes(100))

    assert learnt == 4  # two waits in Queued, two runs
    assert 1 / restarted.history.wait_rate(ASID, QUEUED) < 600  # the one-minute waits count
    assert restarted.learn_past(await backend.store.recent_state_changes(1)) == 0


async def test_within_budget_every_due_watch_is_claimed_in_due_order(backend: Backend) -> None:
    for ivid, seconds in ((1, 20), (2, 0), (3, 10), (4, 0)):
        await backend.add(ivid, T0 + timedelta(seconds=seconds))
    budget = BudgetSchedule(SchedulePolicy(), slots=4, tick_seconds=1.0)
    due_by = T0 + timedelta(seconds=30)
    claim = await backend.store.claim_due(
        Lease("replica-a", T0, LEASE), 10, due_by, rank=budget.rank
    )
    assert [w.image_version_id for w in claim.watches] == [2, 4, 3, 1]
