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
    shows: datetime | None = None
    """When the event the message shows happened: an older one never overwrites it."""


class LiveMessages(Protocol):
    """Where the Slack sink keeps the message it updates for each (subscription, image version).

    It lives in the database so that a restart or another replica keeps updating the same message.
    """

    async def get(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> LiveMessage | None: ...

    async def put(
        self,
        subscription_id: int,
        account_service_id: int,
        image_version_id: int,
        message: LiveMessage,
    ) -> None:
        """Store where the live message is (and forget the post under way, if any)."""

    async def begin_post(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> None:
        """Note that a new live message is about to be posted (see ``posting_since``)."""

    async def posting_since(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> datetime | None:
        """When an earlier attempt began posting a live message whose ``ts`` was never stored:
        it may be in the channel already."""
