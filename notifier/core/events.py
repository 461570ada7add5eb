"""Event types and the event record shared by the detector, the store and the sinks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from notifier.core.status import COMPLETE, FAILED, SQUASHED, JobStatus

STATE_CHANGED: Final = "imageversion.state_changed"
COMPLETED: Final = "imageversion.completed"
FAILED_EVENT: Final = "imageversion.failed"
SQUASHED_EVENT: Final = "imageversion.squashed"
STALLED: Final = "imageversion.stalled"
RESUMED: Final = "imageversion.resumed"
ETA_CHANGED: Final = "imageversion.eta_changed"
OVERDUE: Final = "imageversion.overdue"
PROGRESS: Final = "imageversion.progress"
POLL_FAILING: Final = "watch.poll_failing"
POLL_RECOVERED: Final = "watch.poll_recovered"
DIGEST_DAILY: Final = "digest.daily"
"""Not a detected event: the type of a subscription's daily digest (its webhook ``type``)."""

# Every type a subscription may name; configuration rejects anything else.
EVENT_TYPES: Final = (
    STATE_CHANGED,
    COMPLETED,
    FAILED_EVENT,
    SQUASHED_EVENT,
    STALLED,
    RESUMED,
    ETA_CHANGED,
    OVERDUE,
    PROGRESS,
    POLL_FAILING,
    POLL_RECOVERED,
)


def check_event_types(names: list[str]) -> list[str]:
    """``names`` when each is a type a subscription may name; ValueError names the first that is
    not (the configuration and the API refuse it alike)."""
    for name in names:
        if name not in EVENT_TYPES:
            raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")
    return names


LIVE_REFRESH: Final = "internal.live_refresh"
"""Not an event: the type of the stand-in the outbox hands the Slack sink for a live-message
refresh (a progress/ETA-only change). Never stored in ``events``, never in ``EVENT_TYPES``, so no
webhook, events list, timeline or filter ever sees it."""

SILENCE_ENDED: Final = "internal.silence_ended"
"""Not an event either: the stand-in for a live message's one update when the silence that held
it ends (:func:`notifier.core.live_refresh.resume_event`); never stored, never sent to webhooks."""

TERMINAL_EVENT_FOR_STATE: Final[dict[int, str]] = {
    COMPLETE: COMPLETED,
    FAILED: FAILED_EVENT,
    SQUASHED: SQUASHED_EVENT,
}


class Followed(Protocol):
    """The job a watch follows, as every event about it names it: a claimed watch, a watch as
    it is now, or an event already stored."""

    @property
    def account_service_id(self) -> int: ...

    @property
    def image_version_id(self) -> int: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Detected:
    """An event the detector found, before it has an id or a watch attached."""

    type: str
    previous: JobStatus | None
    current: JobStatus
    detail: Mapping[str, Any] = field(default_factory=dict)

    def event(self, event_id: str, occurred_at: datetime, job: Followed) -> Event:
        """This event with its id, the moment it was seen, and the job it is about: the one
        place an :class:`Event` is put together, for detected events and stand-ins alike."""
        return Event(
            id=event_id,
            type=self.type,
            occurred_at=occurred_at,
            account_service_id=job.account_service_id,
            image_version_id=job.image_version_id,
            label=job.label,
            previous=self.previous,
            current=self.current,
            detail=dict(self.detail),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event: what sinks render. ``id`` is stable and becomes the webhook-id."""

    id: str
    type: str
    occurred_at: datetime
    account_service_id: int
    image_version_id: int
    label: str
    previous: JobStatus | None
    current: JobStatus
    detail: Mapping[str, Any] = field(default_factory=dict)
    """What a non-state event is about, as JSON-ready values, for example
    ``{"reason": "credentials_rejected", "message": "...", "consecutive_failures": 3}`` for
    ``watch.poll_failing`` or ``{"milestone": 50}`` for ``imageversion.progress``. Empty for state
    events. For ``watch.*`` events ``current`` is the last known status (state None, "Unknown",
    when the job was never seen)."""
    silence_id: int | None = None
    """The silence that held it (recorded, not sent); None for an event sent as usual."""
    owners: tuple[str, ...] = ()
    """The watch's owners (``<@U…>``, ``<!subteam^S…>``) as the outbox read them when claiming
    the delivery: configuration only, checked by :mod:`notifier.core.mentions`."""
