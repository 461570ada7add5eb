"""The dispatcher: sends what the outbox holds, records each outcome, schedules retries.

It runs as one task. The poller wakes it right after committing, so a transition reaches Slack
within milliseconds of being seen; the scheduler also wakes it periodically for due retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.notify.outcome import DeliveryFailed
from notifier.notify.retry import RetryPolicy
from notifier.notify.sink import Sink
from notifier.notify.subscription import Subscription
from notifier.store.outbox import (
    ClaimedDelivery,
    claim_due_deliveries,
    mark_delivered_many,
    mark_failed,
    release_leases,
)

log = logging.getLogger(__name__)

SubscriptionLoader = Callable[[], Awaitable[Sequence[Subscription]]]


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Mapping[str, Sink],
        load_subscriptions: SubscriptionLoader,
        *,
        owner: str,
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        max_concurrency: int,
        lease: timedelta,
        batch_size: int = 200,
    ) -> None:
        self._engine = engine
        self._sinks = sinks
        self._load_subscriptions = load_subscriptions
        self._owner = owner
        self._clock = clock
        self._policy = policy
        self._slots = asyncio.Semaphore(max_concurrency)
        self._lease = lease
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Dispatch whenever woken, until :meth:`stop`; a failing pass is logged, not fatal."""
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            try:
                while not self._stopping and await self.dispatch_once():
                    pass
            except Exception:
                log.exception("dispatch pass failed; trying again at the next wake-up")
        await release_leases(self._engine, self._owner)

    def stop(self) -> None:
        """Stop claiming; the pass under way finishes its sends."""
        self._stopping = True
        self._wake.set()

    async def dispatch_once(self) -> int:
        """Claim and send one batch; returns how many deliveries were claimed."""
        claimed = await claim_due_deliveries(
            self._engine, self._owner, self._clock(), self._lease, self._batch_size
        )
        if not claimed:
            return 0
        subscriptions = {s.id: s for s in await self._load_subscriptions()}
        by_key: dict[tuple[int, int, int], list[ClaimedDelivery]] = defaultdict(list)
        for delivery in claimed:
            event = delivery.event
            key = (delivery.subscription_id, event.account_service_id, event.image_version_id)
            by_key[key].append(delivery)
        delivered: list[int] = []
        try:
            await asyncio.gather(
                *(self._send_in_order(batch, subscriptions, delivered) for batch in by_key.values())
            )
        finally:
            # One transaction for the batch's successes: one per send cost more than the send.
            await mark_delivered_many(self._engine, delivered, self._owner, self._clock())
        return len(claimed)

    async def _send_in_order(
        self,
        batch: list[ClaimedDelivery],
        subscriptions: Mapping[int, Subscription],
        delivered: list[int],
    ) -> None:
        for delivery in batch:
            subscription = subscriptions.get(delivery.subscription_id)
            if not await self._send(delivery, subscription, delivered):
                # Whatever follows for this key waits until this one gets through.
                return

    async def _send(
        self,
        delivery: ClaimedDelivery,
        subscription: Subscription | None,
        delivered: list[int],
    ) -> bool:
        """Send one delivery; False when the ones behind it must wait.

        A success is appended to ``delivered``, recorded with the rest of the batch's.
        """
        attempts = delivery.attempts + 1
        if subscription is None:
            await mark_failed(
                self._engine, delivery.id, self._owner, "subscription is gone or inactive", None
            )
            return True
        sink = self._sinks.get(subscription.kind)
        try:
            if sink is None:
                raise DeliveryFailed(
                    f"no sink for {subscription.kind!r} is configured", permanent=True
                )
            async with self._slots:
                try:
                    await sink.deliver(delivery.event, subscription)
                except DeliveryFailed:
                    raise
                except Exception as exc:
                    # A bug of ours must not lose the delivery: log it and retry like a fault.
                    log.exception("sending delivery %d crashed", delivery.id)
                    raise DeliveryFailed(f"internal error: {exc!r}") from exc
        except DeliveryFailed as failure:
            when = self._policy.next_attempt(
                attempts,
                self._clock(),
                permanent=failure.permanent,
                retry_after=failure.retry_after,
            )
            await mark_failed(self._engine, delivery.id, self._owner, failure.reason, when)
            if when is None:
                log.error(
                    "delivery %d of %s to subscription %r gave up after %d attempt(s): %s",
                    delivery.id,
                    delivery.event.type,
                    subscription.name,
                    attempts,
                    failure.reason,
                )
            else:
                log.warning(
                    "delivery %d to subscription %r failed (attempt %d), next try at %s: %s",
                    delivery.id,
                    subscription.name,
                    attempts,
                    when.strftime("%H:%M:%S"),
                    failure.reason,
                )
            return False
        delivered.append(delivery.id)
        return True
