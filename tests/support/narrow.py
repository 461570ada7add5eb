"""The one variant a test knows it holds, asserted, so its assertions type-check under --strict."""

from __future__ import annotations

from notifier.core.events import Event
from notifier.core.status import FetchedStatus, JobStatus
from notifier.store.outbox_store import ClaimedDelivery


def parsed(fetched: FetchedStatus) -> JobStatus:
    """The reply's status; a fetch without a known digest always parses its body."""
    assert fetched.status is not None
    return fetched.status


def event_of(delivery: ClaimedDelivery) -> Event:
    """The event a claimed delivery carries; callers claim event deliveries only."""
    assert isinstance(delivery.subject, Event)
    return delivery.subject
