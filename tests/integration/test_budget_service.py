"""The budget-aware scheduler in the whole service: what a restarted process learns from the
events table, and news sent while the tick that saw it is still polling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from notifier.core.status import QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.budget import bound_settings, leave_past_waits, tick_on
from tests.support.clock import T0, HandClock
from tests.support.running import running_service
from tests.support.waiting import eventually

ASID = 1234
WAITING = 1
"""The image version of the Queued job."""
RUNNING_JOBS = range(100, 111)
HISTORY_JOBS = range(500, 520)
TICKS = 20


def _fleet(clanforge: FakeClanforge, now: HandClock) -> list[tuple[int, int]]:
    """One job Queued and eleven Running with two hours to go; the watches, the Queued first."""
    start = now()
    clanforge.set_status(ASID, WAITING, status_reply(QUEUED, 0, created=start, updated=start))
    for ivid in RUNNING_JOBS:
        clanforge.set_status(
            ASID,
            ivid,
            status_reply(
                RUNNING,
                10,
                eta=start + timedelta(hours=2),
                created=start,
                updated=start,
                start=start,
            ),
        )
    return [(ASID, WAITING), *((ASID, ivid) for ivid in RUNNING_JOBS)]


async def _polls_of_the_waiting_job(database_url: str, clanforge: FakeClanforge) -> int:
    """How often a process on ``database_url`` polls the Queued job in :data:`TICKS` ticks of a
    budget of four requests a tick for twelve due watches."""
    clock = HandClock(T0 + timedelta(hours=1))
    watches = _fleet(clanforge, clock)
    settings = bound_settings(
        database_url, clanforge, watches, requests_per_second=50, interval_seconds=0.08
    )
    before = clanforge.polls(ASID, WAITING)
    async with Service(settings, clock=clock) as service:
        await tick_on(service, clock, TICKS)
    return clanforge.polls(ASID, WAITING) - before


async def test_a_restarted_process_polls_a_waiting_job_as_often_as_past_waits_say(
    tmp_path: Path,
) -> None:
    async with FakeClanforge() as clanforge:
        learnt_url = f"sqlite+aiosqlite:///{tmp_path}/learnt.db"
        # The previous process saw twenty jobs of this account service wait a minute in Queued.
        await leave_past_waits(learnt_url, clanforge, ASID, HISTORY_JOBS, 60, HandClock(T0))
        learnt = await _polls_of_the_waiting_job(learnt_url, clanforge)
        fresh = await _polls_of_the_waiting_job(
            f"sqlite+aiosqlite:///{tmp_path}/fresh.db", clanforge
        )
    print(f"\npolls of the Queued job in {TICKS} ticks: {learnt} learnt, {fresh} fresh")
    assert learnt >= 2 * fresh, (learnt, fresh)


async def test_news_seen_early_in_a_tick_is_sent_before_the_tick_has_polled_everything(
    sqlite_url: str,
) -> None:
    rate, interval = 10, 4
    claimed_per_tick = rate * interval
    async with FakeClanforge() as clanforge, WebhookReceiver() as receiver:
        watches = [(ASID, ivid) for ivid in range(700, 700 + claimed_per_tick + 10)]
        for _, ivid in watches:
            clanforge.set_status(ASID, ivid, status_reply(RUNNING, 10))
        settings = bound_settings(
            sqlite_url,
            clanforge,
            watches,
            requests_per_second=rate,
            interval_seconds=interval,
            # A batch is half a second of the budget: five watches, fetched two at a time.
            clanforge={"max_concurrency": 2},
            network={"allow_private": ["127.0.0.0/8"]},
            subscription=[
                {
                    "name": "chatops",
                    "webhook_url": receiver.url,
                    "events": ["imageversion.state_changed"],
                }
            ],
        )
        async with running_service(settings):
            # The first tick polls 40 of the 50 watches (the budget binds), each first sighting
            # a change to send; its fetches take four seconds at ten a second.
            await eventually(
                lambda: len(clanforge.requests) >= claimed_per_tick and bool(receiver.requests)
            )
        last_fetch_of_the_tick = clanforge.requests[claimed_per_tick - 1].time
        first_sent = receiver.requests[0].at
    # Written and sent after its batch of five, not after the tick's fortieth fetch.
    assert first_sent < last_fetch_of_the_tick, (first_sent, last_fetch_of_the_tick)
