"""The seams between the dispatcher and the places it sends to."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import NamedTuple, NoReturn, Protocol

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.events import Event
from notifier.core.live_messages import LiveMessage, PendingPost
from notifier.core.subscriptions import Subscription

Send = Callable[[], Awaitable[object]]
"""One prepared send: returns on success (what it returns is ignored), raises
``DeliveryFailed`` otherwise."""


def refused(failure: DeliveryFailed) -> Callable[[], Awaitable[NoReturn]]:
    """A prepared send that fails at once: what preparing found wrong is reported when the send
    is due, like any other failure of it."""
    return functools.partial(_raise, failure)


async def _raise(failure: DeliveryFailed) -> NoReturn:
    raise failure


class Sent(NamedTuple):
    """A finished send, as :meth:`Sink.sent` hears of it."""

    event: Event
    delivered_at: datetime | None
    """When it succeeded; None: it failed."""
    permanent: bool = False
    """A failure that trying again cannot help (the delivery is rejected)."""


class Sink(Protocol):
    """Where deliveries go. Sinks subclass it for the defaults of :meth:`prepare` and
    :meth:`sent`."""

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        """Send ``event``; return on success, raise ``DeliveryFailed`` otherwise."""

    def prepare(self, event: Event, subscription: Subscription) -> Send:
        """The send of ``event`` to ``subscription``, worked out ahead of sending it.

        The dispatcher prepares a whole claim at once, right after claiming it, so that its
        workers only send: per-item work costs two to three times as much between sends as in
        one tight loop (the HTTP client's work in between evicts it from the CPU caches). Must
        not raise; work that can fail belongs in the send. By default, the send is
        :meth:`deliver`.
        """
        return functools.partial(self.deliver, event, subscription)

    def sent(self, results: Sequence[Sent]) -> None:
        """Hears of finished sends a batch at a time, when the dispatcher records their
        outcomes: what only counts them (metrics) is kept out of the sends that way. By default
        nothing listens."""
        return


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
