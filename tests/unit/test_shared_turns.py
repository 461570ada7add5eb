"""One budget for several replicas: turns taken from one ledger, on a clock the test moves."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from notifier.clanforge.shared_budget import SharedTurns, credential_key
from notifier.core.pacing import MemoryPaceLedger, reserve, turns_ending
from notifier.core.schedule import Known, SchedulePolicy
from notifier.polling.budget import BudgetSchedule
from tests.support.clock import HandClock


def busiest(times: list[float], window: float = 1.0) -> int:
    return max((sum(1 for u in times if t <= u < t + window - 1e-9) for t in times), default=0)


def test_turns_taken_together_are_one_interval_apart_and_end_where_the_ledger_moved_to() -> None:
    end = reserve(None, 10.0, 3, 0.5, 0.0)
    assert end == 11.5
    assert turns_ending(end, 3, 0.5) == [10.0, 10.5, 11.0]
    # Taken again before those turns came: the next ones follow them, none overlaps.
    assert reserve(end, 10.2, 2, 0.5, 0.0) == 12.5
    # An idle key may send its burst (tolerance) at once, and no more.
    assert turns_ending(reserve(5.0, 10.0, 3, 0.5, 1.0), 3, 0.5) == [9.0, 9.5, 10.0]


async def test_three_replicas_on_one_ledger_send_at_the_rate_together_not_three_times_it() -> None:
    # On the wall clock (concurrent sleeps): 240 requests at 200 a second take 1.2 s.
    ledger = MemoryPaceLedger()
    key = credential_key("ak")
    replicas = [SharedTurns(ledger, key, 200, 1) for _ in range(3)]
    sent: list[float] = []

    async def worker(turns: SharedTurns) -> None:
        for _ in range(10):
            await turns.wait()
            sent.append(time.time())

    # Eight workers a replica, as the poller's fetch workers.
    await asyncio.gather(*(worker(turns) for turns in replicas for _ in range(8)))

    assert len(sent) == 240
    # A turn may go up to half an interval late (a busy loop): a window's edge then holds one
    # more per replica, never more.
    assert busiest(sent) <= 200 + len(replicas)
    assert sent[-1] - sent[0] >= 239 / 200 - 0.05
    # Batched: far fewer round trips to the ledger than requests.
    assert sum(turns.round_trips for turns in replicas) <= 240 / 4


async def test_a_429_seen_by_one_replica_holds_every_replica_back_for_its_retry_after() -> None:
    fake = HandClock.at_seconds(1000.0)
    ledger = MemoryPaceLedger()
    key = credential_key("ak")
    one = SharedTurns(ledger, key, 5, 1, clock=fake.seconds, sleep=fake.sleep)
    other = SharedTurns(ledger, key, 5, 1, clock=fake.seconds, sleep=fake.sleep)
    await one.wait()

    await one.push(30)
    await other.wait()

    assert fake.seconds() >= 1030.0


async def test_requests_waiting_together_take_their_turns_in_one_round_trip() -> None:
    fake = HandClock.at_seconds(1000.0)
    ledger = MemoryPaceLedger()
    await ledger.take("k", 1, 0.1, 0.0, fake.seconds())  # another replica's turn comes first
    turns = SharedTurns(ledger, "k", 10, 1, clock=fake.seconds, sleep=fake.sleep)
    sent: list[float] = []

    async def send() -> None:
        await turns.wait()
        sent.append(round(fake.seconds(), 6))

    # The first goes alone; the two that queued behind it take two turns at once.
    await asyncio.gather(send(), send(), send())
    assert turns.round_trips == 2
    assert sent == [1000.1, 1000.2, 1000.3]

    fake.advance(5)  # idle: the next request takes a fresh turn, now
    await send()
    assert sent[-1] == 1005.3  # not the turn of 1000.4 it could have kept
    assert turns.round_trips == 3


def test_the_credential_key_is_a_digest_not_the_access_key() -> None:
    key = credential_key("AKIA-secretish")
    assert "AKIA" not in key
    assert key == credential_key("AKIA-secretish") != credential_key("other")


def _candidate(watch_id: int, asid: int) -> Known:
    """A Running watch due now, polled ``watch_id`` seconds ago."""
    moment = datetime(2026, 12, 6, tzinfo=UTC).timestamp()
    return Known(watch_id, asid, 4, moment - watch_id, moment)


def test_each_credential_s_watches_are_ranked_against_its_own_rate_not_the_sum() -> None:
    names = {1: "busy", 2: "quiet"}
    budget = BudgetSchedule(
        SchedulePolicy(),
        slots=6,
        tick_seconds=1.0,
        credential_slots={"busy": 5, "quiet": 1},
        credential_of=names.get,
    )
    busy = [_candidate(i, 1) for i in range(1, 21)]
    quiet = [_candidate(100, 2)]
    stray = [_candidate(200, 3)]  # no credential: refused without a request, costs nothing

    chosen = budget.rank(busy + quiet + stray, datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC))

    assert len([i for i in chosen if i < 100]) == 5
    assert 100 in chosen
    assert 200 in chosen


async def test_busy_replicas_each_see_their_part_of_the_turns_and_a_lone_one_all_of_them() -> None:
    # On the wall clock (concurrent sleeps), which the test can move on by ``skipped``.
    skipped = 0.0

    def clock() -> float:
        return time.time() + skipped

    ledger = MemoryPaceLedger()
    key = credential_key("ak")
    replicas = [SharedTurns(ledger, key, 200, 1, clock=clock) for _ in "abc"]

    async def worker(turns: SharedTurns) -> None:
        for _ in range(10):
            await turns.wait()

    # Eight poll workers a replica, all asking at once.
    await asyncio.gather(*(worker(turns) for turns in replicas for _ in range(8)))
    # About a third each (the first to ask had the ledger to itself for a moment).
    assert all(0.25 <= turns.share() <= 0.45 for turns in replicas)

    # The other two stop: a few seconds on, the one left sees the whole budget as its own.
    skipped = 5.0
    alone = replicas[0]
    await asyncio.gather(*(worker(alone) for _ in range(8)))
    assert alone.share() == 1.0


def test_a_replica_claims_its_part_of_a_shared_budget_not_a_whole_tick_of_it() -> None:
    names = {1: "shared"}
    budget = BudgetSchedule(
        SchedulePolicy(),
        slots=10,
        tick_seconds=1.0,
        credential_slots={"shared": 10},
        credential_of=names.get,
        share_of={"shared": 1 / 3}.__getitem__,
    )
    due = [_candidate(i, 1) for i in range(1, 31)]

    chosen = budget.rank(due, datetime(2026, 12, 6, 0, 0, 1, tzinfo=UTC))

    # Three replicas claiming 4 each poll their picks within about a tick, not three.
    assert len(chosen) == 4
