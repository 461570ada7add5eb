"""The outbox filled the way the poller fills it: subscriptions from the configuration, and
image versions that go through their states one poll at a time. For tests of what the
dispatcher sends and of what that costs the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.core.status import COMPLETE, QUEUED, RUNNING, JobStatus
from notifier.dispatching.dispatcher import Dispatcher
from notifier.notify.pacing import ChannelPacer
from notifier.notify.webhook import WebhookSink
from notifier.store.outbox import DeliveryView, list_deliveries
from notifier.store.subscriptions import sync_config_subscriptions
from notifier.store.watches import add_watch
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, event_ids, make_status, poll_once
from tests.support.clock import HandClock
from tests.support.dispatch import WEBHOOK_TIMEOUT_SECONDS, build_dispatcher, webhook_sink

ASID = 1234


async def subscribe(engine: AsyncEngine, name: str = "chatops", **target: str) -> None:
    """A subscription from the configuration file (``webhook_url=...``, ``slack_channel=...``)."""
    setting = SubscriptionSettings(name=name, **target)
    await sync_config_subscriptions(engine, [setting.entry()], T0)


async def lifecycle(
    engine: AsyncEngine, image_version_ids: list[int], states: list[int] | None = None
) -> None:
    """Each image version goes through ``states`` (default Queued, Running, Complete): one
    state_changed event per step, in the outbox in that order."""
    ids = event_ids()
    for ivid in image_version_ids:
        await add_watch(engine, ASID, ivid, f"build {ivid}", "cli", T0)
    for step, state in enumerate(states or [QUEUED, RUNNING, COMPLETE]):
        observed = statuses(dict.fromkeys(image_version_ids, state))
        await poll_once(engine, observed, now=T0 + timedelta(hours=step), ids=ids)


async def queued_for_webhook(
    engine: AsyncEngine, clock: HandClock, receiver: WebhookReceiver, image_version_ids: list[int]
) -> None:
    """A webhook subscription to ``receiver`` and a Queued event for each image version, one
    delivery each, seen an hour before the dispatcher's clock."""
    await subscribe(engine, webhook_url=receiver.url)
    await lifecycle(engine, image_version_ids, [QUEUED])
    clock.now = T0 + timedelta(hours=1)


def statuses(states: dict[int, int]) -> dict[int, JobStatus]:
    """What each image version's poll sees: image version -> state."""
    return {ivid: make_status(state, image_version_id=ivid) for ivid, state in states.items()}


async def deliveries(engine: AsyncEngine) -> list[DeliveryView]:
    """Every delivery in the outbox, oldest first."""
    return sorted(await list_deliveries(engine), key=lambda d: d.id)


@dataclass
class WebhookDeliveries:
    """Deliveries to the "chatops" webhook subscription at ``receiver``, sent by dispatchers on
    the real outbox with a webhook sink: what every test of sending to a webhook sets up."""

    engine: AsyncEngine
    clock: HandClock
    session: aiohttp.ClientSession
    receiver: WebhookReceiver

    async def subscribe(self, path: str = "") -> None:
        """ "chatops" (from the configuration file) sends to the receiver at ``path``."""
        await subscribe(self.engine, webhook_url=self.receiver.url + path)

    async def queued(self, image_version_ids: list[int]) -> None:
        """See :func:`queued_for_webhook`."""
        await queued_for_webhook(self.engine, self.clock, self.receiver, image_version_ids)

    def sink(self, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> WebhookSink:
        return webhook_sink(self.session, timeout)

    def dispatcher(
        self,
        *,
        timeout: float = WEBHOOK_TIMEOUT_SECONDS,
        clock: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> Dispatcher:
        """A dispatcher whose webhook sends time out after ``timeout`` seconds, on the hand clock
        unless given another; ``options`` as :func:`~tests.support.dispatch.build_dispatcher`
        takes them."""
        return build_dispatcher(
            self.engine,
            clock=clock or self.clock,
            session=self.session,
            webhook_timeout=timeout,
            **options,
        )

    async def deliveries(self) -> list[DeliveryView]:
        return await deliveries(self.engine)


@dataclass
class SlackChannelDeliveries:
    """The "builds" subscription (from the configuration file) posting to ``channel`` of a fake
    Slack, and a client of that Slack for the sinks a test builds."""

    engine: AsyncEngine
    clock: HandClock
    slack: FakeSlack
    client: AsyncWebClient
    channel: str

    async def seen(self, states: list[int]) -> None:
        """Image version 1 goes through ``states``, one poll an hour from T0; the dispatcher's
        clock stands an hour after the last."""
        await lifecycle(self.engine, [1], states)
        self.clock.now = T0 + timedelta(hours=len(states))

    def dispatcher(self, pacer: ChannelPacer | None = None) -> Dispatcher:
        """A dispatcher on the hand clock with the standard Slack sink (paced by ``pacer``)."""
        return build_dispatcher(self.engine, clock=self.clock, slack=self.client, pacer=pacer)

    async def deliveries(self) -> list[DeliveryView]:
        return await deliveries(self.engine)
