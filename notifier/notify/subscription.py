"""A subscription as the dispatcher sees it, and the pure rule for which events it wants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from notifier.clanforge.status import state_id_for_name
from notifier.events.model import Event

SubscriptionKind = Literal["slack_channel", "webhook"]


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    name: str
    kind: SubscriptionKind
    target: str
    """The Slack channel id, or the webhook URL."""
    secret: str | None = None
    """The webhook signing secret (whsec_...), resolved; never stored in the database."""
    event_types: frozenset[str] = field(default_factory=frozenset)
    states: frozenset[str] = field(default_factory=frozenset)
    account_service_ids: frozenset[int] = field(default_factory=frozenset)
    image_version_ids: frozenset[int] = field(default_factory=frozenset)


def matches(subscription: Subscription, event: Event) -> bool:
    """Whether ``subscription`` wants ``event``; an empty filter lets everything through."""
    if subscription.event_types and event.type not in subscription.event_types:
        return False
    if subscription.states:
        wanted = {state_id_for_name(name) for name in subscription.states}
        if event.current.state_id not in wanted:
            return False
    if (
        subscription.account_service_ids
        and event.account_service_id not in subscription.account_service_ids
    ):
        return False
    return not (
        subscription.image_version_ids
        and event.image_version_id not in subscription.image_version_ids
    )
