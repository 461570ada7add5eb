"""A subscription as the dispatcher sees it, and the pure rules for which events it wants.

Each filter is its own pure function of (subscription, event) so that each can be tested to
select exactly the right events; ``matches`` is their conjunction. An empty filter lets
everything through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final, Literal

from notifier.core.events import Event
from notifier.core.status import state_id_for_name

SubscriptionKind = Literal["slack_channel", "slack_webhook", "webhook"]


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    name: str
    kind: SubscriptionKind
    target: str
    """The Slack channel id, the webhook URL, or for ``slack_webhook`` only the hook's host."""
    secret: str | None = None
    """Resolved, never stored in the database: the webhook signing secret (whsec_...), or for
    ``slack_webhook`` the incoming-webhook URL itself (it is the credential)."""
    event_types: frozenset[str] = field(default_factory=frozenset)
    states: frozenset[str] = field(default_factory=frozenset)
    account_service_ids: frozenset[int] = field(default_factory=frozenset)
    image_version_ids: frozenset[int] = field(default_factory=frozenset)
    label_glob: str | None = None
    """Shell-style, case-sensitive pattern over the watch label (``EU fleet*``)."""
    more_secrets: tuple[str, ...] = ()
    """Further secrets signing alongside ``secret`` during a rotation (``webhook_secrets``)."""
    template: str | None = None
    """Jinja2 body template source for receivers that need their own shape; None: our payload."""

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """Every secret a request is signed with, one signature each."""
        first = (self.secret,) if self.secret else ()
        return first + tuple(s for s in self.more_secrets if s != self.secret)


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
