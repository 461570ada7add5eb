"""The outbox in memory: the same promises as :class:`notifier.store.outbox.SqlOutbox`, for the
dispatcher's unit tests (no database, and every delivery's state readable directly)."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from notifier.core.events import Event
from notifier.core.lease import Lease
from notifier.core.live_refresh import WatchNow
from notifier.store.outbox_store import (
    ClaimedDelivery,
    Delivered,
    DeliveryStatus,
    Outcome,
    Released,
)


@dataclass(slots=True)
class StoredDelivery:
    id: int
    subscription_id: int
    watch_id: int
    subject: Event | WatchNow
    created_at: datetime
    next_attempt_at: datetime
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


class InMemoryOutbox:
    def __init__(self) -> None:
        self.deliveries: dict[int, StoredDelivery] = {}
        self.disabled: dict[int, str] = {}
        """Disabled subscriptions and why."""
        self._ids = itertools.count(1)

    def add(
        self,
        subscription_id: int,
        watch_id: int,
        subject: Event | WatchNow,
        at: datetime,
    ) -> StoredDelivery:
        """Queue a delivery due at ``at`` (what a poll's write does in the SQL outbox)."""
        delivery = StoredDelivery(next(self._ids), subscription_id, watch_id, subject, at, at)
        self.deliveries[delivery.id] = delivery
        return delivery

    async def claim_due(
        self, lease: Lease, limit: int, skip_subscriptions: Collection[int] = ()
    ) -> list[ClaimedDelivery]:
        heads: dict[tuple[int, int], StoredDelivery] = {}
        for delivery in sorted(self.deliveries.values(), key=lambda d: d.id):
            if delivery.status == "pending":
                heads.setdefault((delivery.subscription_id, delivery.watch_id), delivery)
        due = [
            d
            for d in sorted(heads.values(), key=lambda d: d.id)
            if d.next_attempt_at <= lease.start
            and (d.lease_until is None or d.lease_until < lease.start)
            and d.subscription_id not in skip_subscriptions
        ][:limit]
        for delivery in due:
            delivery.lease_owner, delivery.lease_until = lease.owner, lease.until
        return [
            ClaimedDelivery(d.id, d.subscription_id, d.attempts, d.created_at, d.subject)
            for d in due
        ]

    async def record_outcomes(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            delivery = self.deliveries[outcome.delivery_id]
            if delivery.lease_owner != owner:
                continue
            delivery.lease_owner = delivery.lease_until = None
            if isinstance(outcome, Released):
                continue
            delivery.attempts += 1
            if isinstance(outcome, Delivered):
                delivery.status, delivery.delivered_at = "delivered", outcome.at
                delivery.last_error = None
            else:
                delivery.last_error = outcome.error
                if outcome.retry_at is None:
                    delivery.status = "dead"
                else:
                    delivery.next_attempt_at = outcome.retry_at

    async def extend_leases(self, owner: str, delivery_ids: Sequence[int], until: datetime) -> None:
        for delivery_id in delivery_ids:
            delivery = self.deliveries[delivery_id]
            if delivery.lease_owner == owner:
                delivery.lease_until = until

    async def release_leases(self, owner: str) -> None:
        for delivery in self.deliveries.values():
            if delivery.lease_owner == owner:
                delivery.lease_owner = delivery.lease_until = None

    async def disable_subscription(self, subscription_id: int, reason: str) -> None:
        self.disabled[subscription_id] = reason
        for delivery in self.deliveries.values():
            if delivery.subscription_id == subscription_id and delivery.status == "pending":
                delivery.status, delivery.last_error = "dead", f"subscription disabled: {reason}"
