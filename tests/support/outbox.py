"""The outbox filled the way the poller fills it: subscriptions from the configuration, and
image versions that go through their states one poll at a time. For tests of what the
dispatcher sends and of what that costs the database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.core.status import COMPLETE, QUEUED, RUNNING, JobStatus
from notifier.store.outbox import DeliveryView, list_deliveries
from notifier.store.subscriptions import sync_config_subscriptions
from notifier.store.watches import add_watch
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, event_ids, make_status, poll_once
from tests.support.clock import HandClock

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
