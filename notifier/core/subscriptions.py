"""A subscription as the dispatcher sees it, and the pure rules for which events it wants.

Each filter is its own pure function of (subscription, event) so that each can be tested to
select exactly the right events; ``matches`` is their conjunction. An empty filter lets
everything through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final, Literal, TypeAlias

from notifier.core.digest import DigestSchedule
from notifier.core.events import Event
from notifier.core.mentions import DEFAULT_MENTION_ON, mentions
from notifier.core.status import state_id_for_name

SubscriptionKind = Literal["slack_channel", "slack_webhook", "webhook"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Subscription:
    """What every kind has: an id, a name, and the filters that pick its events."""

    id: int
    name: str
    event_types: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    account_service_ids: frozenset[int] = frozenset()
    image_version_ids: frozenset[int] = frozenset()
    label_glob: str | None = None
    """Shell-style, case-sensitive pattern over the watch label (``EU fleet*``)."""
    mention_on: frozenset[str] = frozenset(DEFAULT_MENTION_ON)
    """Event types whose Slack reply mentions the watch's owners and ``mention``."""
    mention: tuple[str, ...] = ()
    """Extra people (or ``<!here>``) such a reply mentions, checked by core.mentions."""
    digest: DigestSchedule | None = None
    """When the daily digest goes out; None: no digest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSubscription(_Subscription):
    """A chatops webhook, signed per Standard Webhooks."""

    kind: Literal["webhook"] = field(default="webhook", init=False)
    url: str
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)
    """Resolved from the configuration file, never stored: one signature each (several during a
    rotation); none sends the request unsigned."""
    template: str | None = None
    """Jinja2 body template source for receivers that need their own shape; None: our payload."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackChannelSubscription(_Subscription):
    """A Slack channel the bot posts a live message to, and thread replies under it."""

    kind: Literal["slack_channel"] = field(default="slack_channel", init=False)
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackWebhookSubscription(_Subscription):
    """A Slack incoming webhook: post-only, and its URL is the credential."""

    kind: Literal["slack_webhook"] = field(default="slack_webhook", init=False)
    host: str
    """``scheme://host`` of the hook: all that is stored and shown of it."""
    url: str | None = field(default=None, repr=False)
    """The incoming-webhook URL, resolved from the configuration file; None when the file no
    longer has it."""


Subscription: TypeAlias = WebhookSubscription | SlackChannelSubscription | SlackWebhookSubscription
"""One type per kind, told apart by ``kind``; matching reads only the common filters."""


def by_event_type(subscription: Subscription, event: Event) -> bool:
    return not subscription.event_types or event.type in subscription.event_types


def by_state(subscription: Subscription, event: Event) -> bool:
    """The state the job is in now; an unnamed upstream state never matches a state filter."""
    if not subscription.states:
        return True
    wanted = {state_id_for_name(name) for name in subscription.states}
    return event.current.state_id is not None and event.current.state_id in wanted


def by_account_service(subscription: Subscription, event: Event) -> bool:
    return (
        not subscription.account_service_ids
        or event.account_service_id in subscription.account_service_ids
    )


def by_image_version(subscription: Subscription, event: Event) -> bool:
    return (
        not subscription.image_version_ids
        or event.image_version_id in subscription.image_version_ids
    )


def by_label(subscription: Subscription, event: Event) -> bool:
    return subscription.label_glob is None or fnmatchcase(event.label, subscription.label_glob)


FILTERS: Final[tuple[Callable[[Subscription, Event], bool], ...]] = (
    by_event_type,
    by_state,
    by_account_service,
    by_image_version,
    by_label,
)


def matches(subscription: Subscription, event: Event) -> bool:
    """Whether ``subscription`` wants ``event``: every filter agrees."""
    return all(selects(subscription, event) for selects in FILTERS)


def secrets_of(subscription: Subscription) -> tuple[str, ...]:
    """What a subscription's receiver holds of ours that nobody else may see: a webhook's signing
    secrets, a Slack incoming webhook's URL. Error texts are scrubbed of them."""
    if subscription.kind == "webhook":
        return subscription.signing_secrets
    if subscription.kind == "slack_webhook" and subscription.url:
        return (subscription.url,)
    return ()


def follows(subscription: Subscription, event: Event) -> bool:
    """Whether the job of ``event`` is one the subscription follows, whatever the event's type
    or state: what its daily digest covers."""
    return (
        by_account_service(subscription, event)
        and by_image_version(subscription, event)
        and by_label(subscription, event)
    )


def mentions_for(subscription: Subscription, event: Event) -> tuple[str, ...]:
    """Who this delivery's Slack message mentions (:func:`notifier.core.mentions.mentions`)."""
    return mentions(
        event.owners, subscription.mention, subscription.mention_on, subscription.event_types, event
    )
