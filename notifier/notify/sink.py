"""The seams between the dispatcher and the places it sends to."""

from __future__ import annotations

from typing import Protocol

from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.live_messages import LiveMessage, LiveMessageKey, PendingPost
from notifier.core.subscriptions import Subscription


class Sink(Protocol):
    """Where deliveries go: one send per call, its failure classified for the dispatcher."""

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        """Send ``event``; return on success, raise ``DeliveryFailed`` otherwise."""

    async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
        """Send a daily digest (one message or ``digest.daily`` event), like :meth:`deliver`."""


class LiveMessages(Protocol):
    """Where the Slack sink keeps the message it updates for each (subscription, image version).

    It lives in the database so that a restart or another replica keeps updating the same message.
    """

    async def get(self, key: LiveMessageKey) -> LiveMessage | PendingPost | None: ...

    async def reserve(self, key: LiveMessageKey, channel: str) -> PendingPost:
        """Record that a first post is about to be made, before making it."""
        ...

    async def release(self, key: LiveMessageKey) -> None:
        """Drop the marker of a first post that Slack refused: there is nothing to look for."""
        ...

    async def put(self, key: LiveMessageKey, message: LiveMessage) -> None: ...
