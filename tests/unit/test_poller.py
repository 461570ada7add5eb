"""The poller over the in-memory watch store: no database, no HTTP, a hand clock."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

from notifier.core.events import (
    FAILED_EVENT,
    POLL_FAILING,
    POLL_RECOVERED,
    STALLED,
    STATE_CHANGED,
)
from notifier.core.poll_plan import PlannedDelivery
from notifier.core.status import FetchedStatus, JobStatus
from notifier.core.subscriptions import Subscription
from notifier.core.timing import DetectPolicy
from notifier.core.upstream_errors import RATE_LIMITED, UNAVAILABLE, UpstreamError
from notifier.polling.poller import DEFAULT_BATCH_SIZE, Poller, batch_size_for
from notifier.store.memory import MemoryWatchStore, StoredWatch
from tests.conftest import POLL, T0, hand_poller, make_status, make_subscription
from tests.support.clock import HandClock

ASID = 1234


class Upstream:
    """Replies by image version, each with the digest of what it says; a reply whose digest the
    poller already knows comes back unparsed. ``known`` records what the poller knew."""

    def __init__(self, answers: dict[int, JobStatus | UpstreamError]) -> None:
        self.answers = answers
        self.known: list[bytes | None] = []

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        self.known.append(known_digest)
        answer = self.answers[image_version_id]
        if isinstance(answer, UpstreamError):
            raise answer
        digest = hashlib.blake2b(repr(answer).encode(), digest_size=16).digest()
        return FetchedStatus(digest, None if digest == known_digest else answer)


def make(
    store: MemoryWatchStore,
    upstream: Upstream,
    clock: HandClock,
    *subscriptions: Subscription,
    detect: DetectPolicy | None = None,
) -> Poller:
    async def load() -> Sequence[Subscription]:
        return subscriptions

    return hand_poller(store, upstream, clock, subscriptions=load, detect=detect)


class OneBuild(NamedTuple):
    """One watched build (image version 1), its upstream, and the poller on a hand clock."""

    store: MemoryWatchStore
    watch: StoredWatch
    upstream: Upstream
    clock: HandClock
    poller: Poller


def one_build(status: JobStatus, *, detect: DetectPolicy | None = None) -> OneBuild:
    """Image version 1 watched from T0, upstream answering ``status``."""
    store = MemoryWatchStore()
    watch = store.add(ASID, 1, "build 1", T0)
    upstream = Upstream({1: status})
    clock = HandClock(T0)
    return OneBuild(store, watch, upstream, clock, make(store, upstream, clock, detect=detect))


async def test_a_repeated_reply_comes_back_unparsed_and_writes_only_the_schedule() -> None:
    store, watch, upstream, clock, poller = one_build(make_status(3))

    first = await poller.tick()
    clock.now = later = T0 + timedelta(seconds=30)
    again = await poller.tick()

    assert (first.events, again.events, again.polled) == (1, 0, 1)
    assert upstream.known == [None, watch.reply_digest]
    assert watch.observed_at == T0  # the stored status was not written again
    assert (watch.last_polled_at, watch.next_poll_at) == (later, later + timedelta(seconds=30))
    assert [e.type for e in store.events] == [STATE_CHANGED]


async def test_a_watch_whose_own_interval_is_set_is_polled_at_it_when_nothing_changes() -> None:
    store = MemoryWatchStore()
    watch = store.add(ASID, 1, "build 1", T0, interval_seconds=5)
    clock = HandClock(T0)
    poller = make(store, Upstream({1: make_status(3)}), clock)
    await poller.tick()
    clock.now = later = T0 + timedelta(seconds=5)
    await poller.tick()
    assert watch.next_poll_at == later + timedelta(seconds=5)


async def test_failing_polls_are_announced_once_and_the_recovery_despite_the_same_bytes() -> None:
    store, watch, upstream, clock, poller = one_build(make_status(3))
    await poller.tick()
    upstream.answers[1] = UpstreamError(UNAVAILABLE, "Clanforge is down")
    for _ in range(POLL.failure_threshold + 1):
        assert watch.next_poll_at is not None
        clock.now = watch.next_poll_at
        assert (await poller.tick()).failed == 1
    upstream.answers[1] = make_status(3)  # the very reply stored before the failures
    assert watch.next_poll_at is not None
    clock.now = watch.next_poll_at
    recovered = await poller.tick()

    assert upstream.known[-1] is None  # planned in full: there is a recovery to announce
    assert recovered.events == 1
    assert [e.type for e in store.events] == [STATE_CHANGED, POLL_FAILING, POLL_RECOVERED]
    assert (watch.poll_errors, watch.poll_failing) == (0, False)


async def test_a_rate_limited_poll_counts_for_nothing_and_the_next_reply_stays_unparsed() -> None:
    store, watch, upstream, clock, poller = one_build(make_status(3))
    await poller.tick()
    upstream.answers[1] = UpstreamError(RATE_LIMITED, "slow down", retry_after=7)
    clock.now = T0 + timedelta(seconds=30)
    limited = await poller.tick()
    assert watch.next_poll_at == clock.now + timedelta(seconds=7)
    upstream.answers[1] = make_status(3)
    clock.now = watch.next_poll_at
    await poller.tick()

    assert (limited.failed, watch.poll_errors, watch.poll_failing) == (0, 0, False)
    assert upstream.known[-1] is not None
    assert [e.type for e in store.events] == [STATE_CHANGED]


async def test_the_same_reply_past_the_stall_threshold_is_planned_and_reported_stalled() -> None:
    stalls = DetectPolicy(stall_after_seconds=600)
    store, watch, upstream, clock, poller = one_build(make_status(4, 40), detect=stalls)
    polls = []
    for minutes in (0, 1, 9, 11, 12):
        clock.now = T0 + timedelta(minutes=minutes)
        watch.next_poll_at = clock.now
        polls.append((await poller.tick()).events)

    assert polls == [1, 0, 0, 1, 0]
    assert [e.type for e in store.events] == [STATE_CHANGED, STALLED]
    # Unparsed before the deadline, planned at it, unparsed again once the stall is stored.
    assert [k is not None for k in upstream.known] == [False, True, True, False, True]


async def test_deliveries_go_to_the_subscriptions_that_want_the_events() -> None:
    store = MemoryWatchStore()
    store.add(ASID, 1, "build 1", T0)
    store.add(ASID, 2, "build 2", T0)
    everything = make_subscription(1)
    failures_only = make_subscription(2, event_types=frozenset({FAILED_EVENT}))
    clock = HandClock(T0)
    poller = make(
        store, Upstream({1: make_status(3), 2: make_status(6)}), clock, everything, failures_only
    )

    summary = await poller.tick()

    by_id = {e.id: e for e in store.events}
    delivered = sorted(
        (d.subscription_id, by_id[d.event_id].image_version_id, by_id[d.event_id].type)
        for d in store.deliveries
    )
    assert delivered == [
        (1, 1, STATE_CHANGED),
        (1, 2, FAILED_EVENT),
        (1, 2, STATE_CHANGED),
        (2, 2, FAILED_EVENT),
    ]
    assert summary.deliveries == len(store.deliveries)
    assert all(isinstance(d, PlannedDelivery) for d in store.deliveries)


def test_a_poll_batch_holds_half_a_second_of_the_budget_so_news_is_not_held_for_the_tick() -> None:
    assert batch_size_for(requests_per_second=100, max_concurrency=10) == 50
    assert batch_size_for(requests_per_second=5, max_concurrency=2) == 3


def test_a_poll_batch_is_never_smaller_than_the_fetches_that_may_run_at_once() -> None:
    assert batch_size_for(requests_per_second=5, max_concurrency=10) == 10


def test_a_huge_rate_limit_cannot_make_one_batch_of_the_whole_watch_list() -> None:
    """A batch's statuses, plans and rows are held in memory together: at a rate of a million
    a second, one batch was the whole list (650 MB at 100,000 watches)."""
    assert batch_size_for(requests_per_second=1_000_000, max_concurrency=8) == DEFAULT_BATCH_SIZE
