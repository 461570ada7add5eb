"""A dispatcher with the sinks and subscriptions a test gives it, built as the service does."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.retry import RetryPolicy
from notifier.core.subscriptions import Subscription
from notifier.dispatching.dispatcher import (
    OUTCOME_WAIT_SECONDS,
    SUBSCRIPTIONS_MAX_AGE_SECONDS,
    Dispatcher,
    SubscriptionLoader,
)
from notifier.notify.sink import Sink
from notifier.store.outbox import SqlOutbox
from notifier.store.outbox_store import Outbox
from notifier.store.subscriptions import load_active_subscriptions


def fixed_subscriptions(subscriptions: Sequence[Subscription]) -> SubscriptionLoader:
    """A loader that always answers ``subscriptions``, for tests with no subscription table."""

    async def load() -> list[Subscription]:
        return list(subscriptions)

    return load


def build_dispatcher(
    outbox: Outbox,
    sinks: Mapping[str, Sink],
    load_subscriptions: SubscriptionLoader,
    *,
    clock: Callable[[], datetime],
    owner: str = "replica-test",
    policy: RetryPolicy | None = None,
    max_concurrency: int = 4,
    lease_seconds: float = 30,
    outcome_wait: float = OUTCOME_WAIT_SECONDS,
    subscriptions_max_age: float = SUBSCRIPTIONS_MAX_AGE_SECONDS,
) -> Dispatcher:
    """Several built with other owners on one outbox act as replicas."""
    return Dispatcher(
        outbox,
        sinks,
        load_subscriptions,
        owner=owner,
        clock=clock,
        policy=policy or RetryPolicy(),
        max_concurrency=max_concurrency,
        lease=timedelta(seconds=lease_seconds),
        outcome_wait=outcome_wait,
        subscriptions_max_age=subscriptions_max_age,
    )


def sql_dispatcher(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    sinks: Mapping[str, Sink],
    *,
    load_subscriptions: SubscriptionLoader | None = None,
    **options: Any,
) -> Dispatcher:
    """A dispatcher on the real outbox in ``engine``, loading the stored subscriptions unless a
    test gives its own loader; ``options`` as :func:`build_dispatcher` takes them."""
    return build_dispatcher(
        SqlOutbox(engine),
        sinks,
        load_subscriptions or functools.partial(load_active_subscriptions, engine, {}),
        clock=clock,
        **options,
    )
