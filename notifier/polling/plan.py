"""What one poll of one watch means, as plain data: the pure core of the poll tick.

The tick fetches, then asks :func:`plan_success` or :func:`plan_failure` what to write; the store
writes every plan of the tick in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifier.clanforge.errors import UpstreamError
from notifier.clanforge.status import COMPLETE, FAILED, RUNNING, SQUASHED, JobStatus
from notifier.config import PollSettings
from notifier.events.detector import carry_known_state, detect
from notifier.events.model import Event
from notifier.notify.subscription import Subscription, matches

# Polling errors back off to at most this many intervals, so a recovered upstream is seen soon.
MAX_ERROR_BACKOFF_INTERVALS = 8


@dataclass(frozen=True, slots=True)
class DueWatch:
    """A watch claimed for this tick, with what we remembered of it."""

    watch_id: int
    account_service_id: int
    image_version_id: int
    label: str
    poll_errors: int
    previous: JobStatus | None
    state_since: datetime | None


@dataclass(frozen=True, slots=True)
class PollPlan:
    watch_id: int
    next_poll_at: datetime | None
    poll_errors: int
    last_poll_error: str | None
    status: JobStatus | None = None
    """The status to store; None when nothing changed (no write)."""
    first_sighting: bool = False
    state_since: datetime | None = None
    events: Sequence[Event] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    event_id: str
    subscription_id: int
    watch_id: int


def next_poll_at(
    state_id: int | None, state_since: datetime, now: datetime, poll: PollSettings
) -> datetime | None:
    """When to look again; None once the job is finished for good."""
    if state_id in (COMPLETE, SQUASHED):
        return None
    if state_id == FAILED:
        if now - state_since >= timedelta(seconds=poll.failed_linger_seconds):
            return None
        return now + timedelta(seconds=poll.failed_interval_seconds)
    if state_id == RUNNING:
        return now + timedelta(seconds=poll.running_interval_seconds)
    return now + timedelta(seconds=poll.interval_seconds)


def plan_success(
    due: DueWatch,
    observed: JobStatus,
    now: datetime,
    poll: PollSettings,
    new_event_id: Callable[[], str],
) -> PollPlan:
    detected = detect(due.previous, observed)
    current = carry_known_state(due.previous, observed)
    state_changed = due.previous is None or due.previous.state_id != current.state_id
    state_since = now if state_changed or due.state_since is None else due.state_since
    events = tuple(
        Event(
            id=new_event_id(),
            type=d.type,
            occurred_at=now,
            account_service_id=due.account_service_id,
            image_version_id=due.image_version_id,
            label=due.label,
            previous=d.previous,
            current=d.current,
            detail=d.detail,
        )
        for d in detected
    )
    return PollPlan(
        watch_id=due.watch_id,
        next_poll_at=next_poll_at(current.state_id, state_since, now, poll),
        poll_errors=0,
        last_poll_error=None,
        status=None if current == due.previous else current,
        first_sighting=due.previous is None,
        state_since=state_since,
        events=events,
    )


def plan_failure(
    due: DueWatch, error: UpstreamError, now: datetime, poll: PollSettings
) -> PollPlan:
    """A failed poll changes no status and creates no event; it only backs off."""
    errors = due.poll_errors + 1
    backoff = min(2 ** (errors - 1), MAX_ERROR_BACKOFF_INTERVALS) * poll.interval_seconds
    if error.retry_after is not None:
        backoff = max(backoff, error.retry_after)
    return PollPlan(
        watch_id=due.watch_id,
        next_poll_at=now + timedelta(seconds=backoff),
        poll_errors=errors,
        last_poll_error=error.message,
    )


def plan_deliveries(
    plans: Sequence[PollPlan], subscriptions: Sequence[Subscription]
) -> list[PlannedDelivery]:
    """One delivery per (event, subscription that wants it), in event order."""
    return [
        PlannedDelivery(event.id, subscription.id, plan.watch_id)
        for plan in plans
        for event in plan.events
        for subscription in subscriptions
        if matches(subscription, event)
    ]
