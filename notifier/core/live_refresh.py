"""A live-message refresh: not an event, but what the Slack sink renders like one.

A progress or ETA change with no event of its own still updates a channel's live message. Its
delivery names a watch; the sink is handed a stand-in event of type ``LIVE_REFRESH`` built here
from that watch's newest status, so that every sink takes one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifier.core.events import LIVE_REFRESH, SILENCE_ENDED, Detected, Event
from notifier.core.status import FAILED, JobStatus


@dataclass(frozen=True, slots=True)
class WatchNow:
    """The watch a refresh delivery names, with its newest status as stored now."""

    account_service_id: int
    image_version_id: int
    label: str
    status: JobStatus


def refresh_event(delivery_id: int, created_at: datetime, watch: WatchNow) -> Event:
    """The stand-in for a refresh delivery; its id is the delivery's, never an event's."""
    return Detected(LIVE_REFRESH, None, watch.status).event(
        f"refresh-{delivery_id}", created_at, watch
    )


def resume_event(delivery_id: int, held: Event) -> Event:
    """The stand-in for a live message's one update after a silence: it shows the newest status
    (the sink reads it), and says the job failed meanwhile when ``held`` (the held event chosen
    to stand for the rest, a failure if there was one) is the job going to Failed."""
    failed = held.current.state_id == FAILED and (
        held.previous is None or held.previous.state_id != FAILED
    )
    resumed = Detected(SILENCE_ENDED, held.previous, held.current, {"failed_meanwhile": failed})
    return resumed.event(f"resume-{delivery_id}", held.occurred_at, held)
