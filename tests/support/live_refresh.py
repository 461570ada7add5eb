"""The Slack live message's progress refreshes, end to end: one replica's real poller,
dispatcher and Slack sink, stepped by hand against fake Clanforge, fake Slack and a webhook
receiver, on a real database. For the refresh tests and for what refreshes cost the database."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.retry import RetryPolicy
from notifier.core.status import RUNNING
from notifier.core.subscriptions import Subscription
from notifier.polling.poller import DEFAULT_BATCH_SIZE
from notifier.store.tables import WATCHES, DeliveryRow
from notifier.store.watches import add_watch
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import seed_builds_and_hook
from tests.support.dispatch import build_dispatcher, fake_slack_client, slack_sink
from tests.support.poller import make_poller

ASID = 1234
IVID = 567890
CHANNEL = "C0BUILDS"
LATE = "C0LATE"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
# Far enough out that small moves stay under the 600 s eta_changed step.
ETA = utc_now().replace(microsecond=0) + timedelta(hours=2)


class Harness:
    """One replica's poller and dispatcher, stepped by hand: a tick, then a drain."""

    def __init__(
        self,
        engine: AsyncEngine,
        clanforge: FakeClanforge,
        slack: FakeSlack,
        session: aiohttp.ClientSession,
        subscriptions: list[Subscription],
        receiver: WebhookReceiver,
    ) -> None:
        self.engine = engine
        self.clanforge = clanforge
        self.slack = slack
        self.subscriptions = subscriptions
        self.receiver = receiver

        async def load() -> list[Subscription]:
            return self.subscriptions

        self.poller = make_poller(
            engine,
            session,
            clanforge,
            batch_size=DEFAULT_BATCH_SIZE,
            clock=utc_now,
            subscriptions=load,
        )
        self.sink = slack_sink(engine, fake_slack_client(slack, session), utc_now)
        self.dispatcher = build_dispatcher(
            engine,
            clock=utc_now,
            load_subscriptions=load,
            session=session,
            sinks={"slack_channel": self.sink},
            owner="test",
            # Events are dated T0 and retried by the real clock: an age limit would turn these
            # tests into a calendar (they broke once T0 was days old). Age has its own tests.
            policy=RetryPolicy(
                schedule_seconds=(0.05,) * 50, max_attempts=1000, max_age_seconds=math.inf
            ),
            max_concurrency=8,
        )

    async def poll(
        self, state_id: int, progress: int, eta: datetime = ETA, ivids: tuple[int, ...] = (IVID,)
    ) -> None:
        """Upstream now says this of each image version; all watches are due, one tick sees it."""
        for ivid in ivids:
            self.clanforge.set_status(ASID, ivid, status_reply(state_id, progress, eta=eta))
        async with self.engine.begin() as conn:
            await conn.execute(update(WATCHES).values(next_poll_at=utc_now()))
        await self.poller.tick()

    async def drain(self) -> None:
        while await pending(self.engine):
            if not await self.dispatcher.dispatch_due():
                await asyncio.sleep(0.02)


async def pending(engine: AsyncEngine, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
    if kind is not None:
        stmt = stmt.where(DeliveryRow.kind == kind)
    async with engine.connect() as conn:
        return int(await conn.scalar(stmt) or 0)


@pytest.fixture
async def harness(engine: AsyncEngine) -> AsyncIterator[Harness]:
    async with (
        FakeClanforge(record=False) as clanforge,
        FakeSlack(channels={CHANNEL, LATE}) as slack,
        WebhookReceiver() as receiver,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        subscriptions = await seed_builds_and_hook(engine, CHANNEL, receiver.url, SECRET)
        await add_watch(engine, ASID, IVID, "EU fleet, build 1.4.2", "config", utc_now())
        yield Harness(engine, clanforge, slack, session, subscriptions, receiver)


async def running_message_posted(harness: Harness) -> str:
    """First sighting at Running 30%: the live message is posted; returns its ts."""
    await harness.poll(RUNNING, 30)
    await harness.drain()
    [post] = harness.slack.top_level_posts(CHANNEL)
    assert "Running 30%" in post.args["text"]
    return str(post.answer["ts"])
