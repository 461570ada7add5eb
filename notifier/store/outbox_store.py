"""The outbox as the dispatcher sees it: claim due deliveries under a lease, record their
outcomes, extend the leases of sends under way, release what was not sent.

Two implementations: :class:`notifier.store.outbox.SqlOutbox` (SQLite and PostgreSQL, the
service's) and :class:`notifier.store.memory_outbox.InMemoryOutbox` (the dispatcher's unit
tests). A lease is held by an owner (a replica id, ``host:pid:suffix``) until a moment; once it
runs out another owner may claim the delivery, so only rows an owner still leases take its
outcomes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.lease import Lease
from notifier.core.live_refresh import WatchNow

DeliveryStatus = Literal["pending", "delivered", "dead", "held", "silenced"]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    subscription_id: int
    attempts: int
    created_at: datetime
    subject: Event | WatchNow | DailyDigest
    """The stored event to send, for a live-message refresh the watch as it is now, or a
    subscription's daily digest."""
    kind: str = "event"
    """"event", "refresh", "digest", or "resume": the one update a live message gets back when
    the silence that held ``subject`` (the held event it stands for) ends."""


@dataclass(frozen=True, slots=True)
class Delivered:
    delivery_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    delivery_id: int
    error: str
    retry_at: datetime | None
    """None: no further attempt, the delivery is dead."""


@dataclass(frozen=True, slots=True)
class Released:
    """Not attempted (its receiver asked us to slow down meanwhile): back in line, unchanged."""

    delivery_id: int


Outcome = Delivered | Failed | Released


class Outbox(Protocol):
    async def claim_due(
        self, lease: Lease, limit: int, skip_subscriptions: Collection[int] = ()
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries, oldest first, only the oldest pending one of each
        (subscription, watch).

        Taking only the head of each key keeps a receiver's messages about one image version in
        event order: a delivery waiting for its retry holds back the ones behind it, and nothing
        else. ``skip_subscriptions`` are left alone this time (their receiver asked us to slow
        down). Deliveries this owner already leases are not handed out twice.
        """
        ...

    async def record_outcomes(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        """Record several attempts at once (one transaction); only deliveries ``owner`` still
        leases change: if its lease ran out and another owner took one over, theirs counts."""
        ...

    async def extend_leases(self, owner: str, delivery_ids: Sequence[int], until: datetime) -> None:
        """Keep the leases of sends still under way (a slow receiver, several Slack calls)."""
        ...

    async def release_leases(self, owner: str) -> None:
        """Give back everything ``owner`` leases, so others need not wait the leases out."""
        ...

    async def disable_subscription(self, subscription_id: int, reason: str) -> None:
        """Stop sending to a subscription whose receiver is gone; its pending deliveries go dead."""
        ...
