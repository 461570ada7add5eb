"""The one builder of a dispatcher and its sinks, built as the service builds them but pointed at
the test's fake servers."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.retry import RetryPolicy
from notifier.core.subscriptions import Subscription
from notifier.dispatching.dispatcher import (
    OUTCOME_WAIT_SECONDS,
    SUBSCRIPTIONS_MAX_AGE_SECONDS,
    Dispatcher,
    SubscriptionLoader,
)
from notifier.notify.pacing import ChannelPacer
from notifier.notify.sink import Sink
from notifier.notify.slack import ControlsLookup, SlackSink
from notifier.notify.webhook import WebhookSink
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.outbox import SqlOutbox
from notifier.store.outbox_store import Outbox
from notifier.store.subscriptions import load_active_subscriptions
from notifier.store.watches import newest_status
from notifier.testing.fake_slack import FakeSlack

WEBHOOK_TIMEOUT_SECONDS = 2.0
"""How long the test webhook sink waits for an answer unless a test says otherwise."""


def fixed_subscriptions(subscriptions: Sequence[Subscription]) -> SubscriptionLoader:
    """A loader that always answers ``subscriptions``, for tests with no subscription table."""

    async def load() -> list[Subscription]:
        return list(subscriptions)

    return load


def webhook_sink(
    session: aiohttp.ClientSession, timeout: float = WEBHOOK_TIMEOUT_SECONDS
) -> WebhookSink:
    """The "webhook" sink, sending with ``session`` (to the test's receivers)."""
    return WebhookSink(session, timeout_seconds=timeout)


def fake_slack_client(slack: FakeSlack, session: aiohttp.ClientSession) -> AsyncWebClient:
    """slack-sdk's client of the fake Slack, with the token it accepts."""
    return AsyncWebClient(token=slack.token, base_url=slack.base_url, session=session)


def slack_sink(
    engine: AsyncEngine,
    client: AsyncWebClient,
    clock: Callable[[], datetime],
    *,
    pacer: ChannelPacer | None = None,
    controls: ControlsLookup | None = None,
) -> SlackSink:
    """The "slack_channel" sink as the service builds it: live messages and the newest status in
    ``engine``'s database, posting with ``client``. No pacing unless a test gives a pacer, and
    no buttons unless it gives their ``controls``."""
    return SlackSink(
        client,
        DatabaseLiveMessages(engine, clock),
        newest_status=functools.partial(newest_status, engine),
        pacer=pacer if pacer is not None else ChannelPacer(0),
        controls=controls,
    )


def build_dispatcher(
    store: AsyncEngine | Outbox,
    *,
    clock: Callable[[], datetime],
    load_subscriptions: SubscriptionLoader | None = None,
    session: aiohttp.ClientSession | None = None,
    webhook_timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    slack: AsyncWebClient | None = None,
    pacer: ChannelPacer | None = None,
    controls: ControlsLookup | None = None,
    sinks: Mapping[str, Sink] | None = None,
    owner: str = "replica-test",
    policy: RetryPolicy | None = None,
    max_concurrency: int = 4,
    lease_seconds: float = 30,
    outcome_wait: float = OUTCOME_WAIT_SECONDS,
    subscriptions_max_age: float = SUBSCRIPTIONS_MAX_AGE_SECONDS,
) -> Dispatcher:
    """A dispatcher on ``store``: the real outbox in a database (an engine) or another outbox.

    Subscriptions come from ``load_subscriptions``, by default the ones stored in the database.
    Its sinks are the standard ones the test points at its fakes: a "webhook" sink sending with
    ``session`` (answers awaited ``webhook_timeout`` seconds), a "slack_channel" sink posting
    with the ``slack`` client (:func:`slack_sink`, with ``pacer`` and ``controls``); ``sinks``
    are a test's own, by kind, in place of those. Several built with other owners on one
    outbox act as replicas."""
    engine = store if isinstance(store, AsyncEngine) else None
    built: dict[str, Sink] = {}
    if session is not None:
        built["webhook"] = webhook_sink(session, webhook_timeout)
    if slack is not None:
        if engine is None:
            raise TypeError("the Slack sink keeps its live messages in a database: give an engine")
        built["slack_channel"] = slack_sink(engine, slack, clock, pacer=pacer, controls=controls)
    built.update(sinks or {})
    if load_subscriptions is None:
        if engine is None:
            raise TypeError("only a database has stored subscriptions: give load_subscriptions")
        load_subscriptions = functools.partial(load_active_subscriptions, engine, {})
    return Dispatcher(
        SqlOutbox(store) if isinstance(store, AsyncEngine) else store,
        built,
        load_subscriptions,
        owner=owner,
        clock=clock,
        policy=policy or RetryPolicy(),
        max_concurrency=max_concurrency,
        lease=timedelta(seconds=lease_seconds),
        outcome_wait=outcome_wait,
        subscriptions_max_age=subscriptions_max_age,
    )
