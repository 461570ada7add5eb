"""One replica's real poller, dispatcher and Slack sink, in this process, over fake Clanforge,
fake Slack and a webhook receiver, on a real database, stepped by hand: a tick, then a drain.
For the end-to-end tests of what a watch sends (live refresh, silences); each says what its
story differs in. (Replicas as `notifier run` processes are in replicas.py.)"""

from __future__ import annotations

import asyncio
import base64
import functools
import math
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import aiohttp
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.retry import RetryPolicy
from notifier.core.subscriptions import Subscription
from notifier.notify.slack import ControlsLookup
from notifier.polling.poller import DEFAULT_BATCH_SIZE
from notifier.store.silences import current_silences
from notifier.store.tables import WATCHES, DeliveryRow
from notifier.store.watches import add_watch
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack, SlackCall
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import seed_builds_and_hook
from tests.support.dispatch import build_dispatcher, fake_slack_client, slack_sink
from tests.support.poller import make_poller

ASID = 1234
IVID = 567890
CHANNEL = "C0BUILDS"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

# Events are dated when they happen and retried by the real clock: an age limit would turn the
# tests into a calendar (they broke once T0 was days old). Age has its own tests.
PATIENT = RetryPolicy(schedule_seconds=(0.05,) * 50, max_attempts=1000, max_age_seconds=math.inf)

ClockT = TypeVar("ClockT", bound=Callable[[], datetime])


class SteppedReplica(Generic[ClockT]):
    """One replica's poller and dispatcher, stepped by hand: a tick, then a drain.

    It reads time from ``clock`` (the real one, or a hand clock a test moves). Silences are
    loaded by the poller only when ``silences`` is set; the Slack sink shows buttons only when
    given their ``controls``. Upstream's ETA is ``eta``, by default two hours from the start
    (far enough out that small moves stay under the 600 s eta_changed step)."""

    def __init__(
        self,
        engine: AsyncEngine,
        clanforge: FakeClanforge,
        slack: FakeSlack,
        receiver: WebhookReceiver,
        session: aiohttp.ClientSession,
        subscriptions: list[Subscription],
        *,
        clock: ClockT,
        eta: datetime | None = None,
        silences: bool = False,
        controls: ControlsLookup | None = None,
        policy: RetryPolicy = PATIENT,
    ) -> None:
        self.engine = engine
        self.clanforge = clanforge
        self.slack = slack
        self.receiver = receiver
        self.subscriptions = subscriptions
        self.clock = clock
        self.eta = eta if eta is not None else clock().replace(microsecond=0) + timedelta(hours=2)

        async def load() -> list[Subscription]:
            return self.subscriptions

        self.poller = make_poller(
            engine,
            session,
            clanforge,
            batch_size=DEFAULT_BATCH_SIZE,
            clock=clock,
            subscriptions=load,
            load_silences=functools.partial(current_silences, engine) if silences else None,
        )
        self.sink = slack_sink(engine, fake_slack_client(slack, session), clock, controls=controls)
        self.dispatcher = build_dispatcher(
            engine,
            clock=clock,
            load_subscriptions=load,
            session=session,
            sinks={"slack_channel": self.sink},
            policy=policy,
            max_concurrency=8,
        )

    async def poll(
        self,
        state_id: int,
        progress: int,
        eta: datetime | None = None,
        ivids: tuple[int, ...] = (IVID,),
        error: str | None = None,
    ) -> None:
        """Upstream now says this of each image version (failed if there is an ``error``); all
        watches are due, one tick sees it."""
        reply = status_reply(
            state_id,
            progress,
            eta=eta if eta is not None else self.eta,
            error=error,
            failed=int(bool(error)),
        )
        for ivid in ivids:
            self.clanforge.set_status(ASID, ivid, reply)
        async with self.engine.begin() as conn:
            await conn.execute(update(WATCHES).values(next_poll_at=self.clock()))
        await self.poller.tick()

    async def drain(self, rounds: int = 100) -> None:
        """Dispatch until no delivery is pending; fails if that takes more than ``rounds``."""
        for _ in range(rounds):
            if not await pending(self.engine):
                return
            if not await self.dispatcher.dispatch_due():
                await asyncio.sleep(0.02)
        raise AssertionError(f"the outbox did not drain in {rounds} rounds")

    def calls(self) -> list[SlackCall]:
        """The chat.* calls Slack answered ok, in order."""
        return [c for c in self.slack.calls if c.ok and c.method.startswith("chat.")]


async def pending(engine: AsyncEngine, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
    if kind is not None:
        stmt = stmt.where(DeliveryRow.kind == kind)
    async with engine.connect() as conn:
        return int(await conn.scalar(stmt) or 0)


@asynccontextmanager
async def stepped_replica(
    engine: AsyncEngine,
    *,
    clock: ClockT,
    channels: Iterable[str] = (CHANNEL,),
    eta: datetime | None = None,
    silences: bool = False,
    controls: ControlsLookup | None = None,
    policy: RetryPolicy = PATIENT,
) -> AsyncIterator[SteppedReplica[ClockT]]:
    """A :class:`SteppedReplica` over fresh fakes (Slack knowing ``channels``): the builds
    channel and a webhook subscribed, and one image version watched; a fixture yields it."""
    async with (
        FakeClanforge(record=False) as clanforge,
        FakeSlack(channels=set(channels)) as slack,
        WebhookReceiver() as receiver,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        subscriptions = await seed_builds_and_hook(engine, CHANNEL, receiver.url, SECRET)
        await add_watch(engine, ASID, IVID, "EU fleet, build 1.4.2", "config", utc_now())
        yield SteppedReplica(
            engine,
            clanforge,
            slack,
            receiver,
            session,
            subscriptions,
            clock=clock,
            eta=eta,
            silences=silences,
            controls=controls,
            policy=policy,
        )
