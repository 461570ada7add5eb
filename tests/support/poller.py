"""The real poller over real sockets: the real Clanforge client pointed at the fake, the real
store, the wall clock unless a test gives another. For tests of what a tick does and of what it
costs the database (tests/performance)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.clanforge.client import ClanforgeClient
from notifier.core.clock import utc_now
from notifier.core.poll_plan import PollPolicy
from notifier.core.subscriptions import Subscription
from notifier.core.timing import DetectPolicy
from notifier.polling.poller import (
    BatchObserver,
    FetchObserver,
    Poller,
    SilenceLoader,
    StatusSource,
    TickSummary,
)
from notifier.store.polling import SqlWatchStore
from notifier.store.tables import WATCHES
from notifier.store.watches import add_watch
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support.statements import Statements

ASID = 1234
"""The account service every watch of these tests belongs to."""


async def no_subscriptions() -> list[Subscription]:
    return []


def fake_client(session: aiohttp.ClientSession, fake: FakeClanforge) -> ClanforgeClient:
    """The real client, pointed at the fake Clanforge with its default credentials."""
    return ClanforgeClient(session, fake.base_url, "ak", "sk")


def make_poller(
    engine: AsyncEngine,
    session: aiohttp.ClientSession,
    fake: FakeClanforge,
    *,
    claim_limit: int = 100,
    batch_size: int = 3,
    poll: PollPolicy | None = None,
    clock: Callable[[], datetime] = utc_now,
    detect: DetectPolicy | None = None,
    source: StatusSource | None = None,
    observe_fetches: FetchObserver | None = None,
    observe_batch: BatchObserver | None = None,
    subscriptions: Callable[[], Awaitable[Sequence[Subscription]]] = no_subscriptions,
    load_silences: SilenceLoader | None = None,
) -> Poller:
    """The poller as the service builds it, owned by "test", fetching from ``fake`` unless a
    ``source`` stands in between."""
    # Only the observers a test gives: the poller's own defaults otherwise.
    observers: dict[str, Any] = {}
    if observe_fetches is not None:
        observers["observe_fetches"] = observe_fetches
    if observe_batch is not None:
        observers["observe_batch"] = observe_batch
    return Poller(
        SqlWatchStore(engine),
        source or fake_client(session, fake),
        subscriptions,
        poll=poll or PollPolicy(interval_seconds=30),
        max_concurrency=2,
        claim_limit=claim_limit,
        lease=timedelta(minutes=1),
        owner="test",
        clock=clock,
        detect=detect,
        on_committed=lambda: None,
        batch_size=batch_size,
        load_silences=load_silences,
        **observers,
    )


async def watch_queued_jobs(engine: AsyncEngine, fake: FakeClanforge, count: int) -> None:
    """Watches of image versions 1 to ``count``, each of them Queued upstream."""
    for ivid in range(1, count + 1):
        fake.set_status(ASID, ivid, status_reply(3))
        await add_watch(engine, ASID, ivid, f"build {ivid}", "cli", utc_now())


async def polled_once(
    engine: AsyncEngine,
    session: aiohttp.ClientSession,
    fake: FakeClanforge,
    count: int,
    **options: Any,
) -> Poller:
    """A poller (``options`` as :func:`make_poller` takes them) that has seen ``count`` Queued
    jobs once: their first sightings are stored."""
    await watch_queued_jobs(engine, fake, count)
    poller = make_poller(engine, session, fake, **options)
    await poller.tick()
    return poller


async def make_all_due(engine: AsyncEngine, when: datetime | None = None) -> None:
    """Every watch due at ``when`` (now by default), as if its interval had passed."""
    async with engine.begin() as conn:
        await conn.execute(update(WATCHES).values(next_poll_at=when or utc_now()))


async def tick_when_due_again(
    engine: AsyncEngine, poller: Poller
) -> tuple[TickSummary, Statements]:
    """Make every watch due, then tick: what the tick did, and what it sent the database."""
    await make_all_due(engine)
    statements = Statements(engine)
    return await poller.tick(), statements
