"""The seams between the dispatcher and the places it sends to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notifier.events.model import Event
from notifier.notify.subscription import Subscription


class Sink(Protocol):
    async def deliver(self, event: Event, subscription: Subscription) -> None:
        """Send ``event``; return on success, raise ``DeliveryFailed`` otherwise."""


@dataclass(frozen=True, slots=True)
class LiveMessage:
    channel: str
    ts: str
    rendered: str | None = None
    """Fingerprint of what the message shows now (None: unknown, always update)."""


@dataclass(frozen=True, slots=True)
class PendingPost:
    """A first post that was started at ``since`` and whose ``ts`` was never stored.

    Either the post failed, or it reached Slack and the process died before storing the answer:
    the sink looks in the channel's history before posting again.
    """

    channel: str
    since: datetime


class LiveMessages(Protocol):
    """Where the Slack sink keeps the message it updates for each (subscription, image version).

    It lives in the database so that a restart or another replica keeps updating the same message.
    """

    async def get(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> LiveMessage | PendingPost | None: ...

    async def reserve(
        self, subscription_id: int, account_service_id: int, image_version_id: int, channel: str
    ) -> PendingPost:
        """Record that a first post is about to be made, before making it."""
        ...

    async def release(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> None:
        """Drop the marker of a first post that Slack refused: there is nothing to look for."""
        ...

    async def put(
        self,
        subscription_id: int,
        account_service_id: int,
        image_version_id: int,
        message: LiveMessage,
    ) -> None: ...
