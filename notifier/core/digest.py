"""The daily digest: when it is due, which day it belongs to, and what it says.

Pure: the store hands in the events of the window (already narrowed to what the subscription
follows), with the last earlier event of each job that has none in it, and gets back the digest,
or None for a day when nothing happened and nothing is left unfinished. Its id is fixed by
(subscription, day), so that every replica firing the same cron trigger, and a restart firing
it again, claims the same send and only the first claim counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.core.clock import as_utc
from notifier.core.events import RESUMED, STALLED, STATE_CHANGED, Event
from notifier.core.status import COMPLETE, FAILED, SQUASHED, state_name

WINDOW: Final = timedelta(hours=24)
CATCH_UP: Final = timedelta(hours=1)
"""A digest whose time passed while no replica ran (a restart at 09:00) still goes out when one
starts within this long after it."""

_SPEC: Final = re.compile(r"([01]\d|2[0-3]):([0-5]\d) ([A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*)")

Outcome = Literal["completed", "failed", "squashed", "stalled", "running"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("failed", "squashed", "stalled", "running", "completed")
"""In the order a digest lists them: what needs someone first."""


class DigestProblem(ValueError):
    """Why a digest setting was refused, in words for a one-line error."""


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    hour: int
    minute: int
    zone: str

    @property
    def text(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d} {self.zone}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


def parse_digest(text: str) -> DigestSchedule:
    """``"09:00 Europe/Berlin"``: a 24-hour time and an IANA time zone (``UTC`` allowed)."""
    found = _SPEC.fullmatch(text.strip())
    if found is None:
        raise DigestProblem(
            f"{text[:60]!r} is not a digest time; "
            'write "HH:MM Area/City" like "09:00 Europe/Berlin"'
        )
    zone = found.group(3)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DigestProblem(
            f"unknown time zone {zone!r}; use an IANA name like Europe/Berlin"
        ) from None
    return DigestSchedule(int(found.group(1)), int(found.group(2)), zone)


def last_fire(schedule: DigestSchedule, now: datetime) -> datetime:
    """The latest moment at or before ``now`` the digest was due, in UTC."""
    tz = schedule.tz
    local = as_utc(now).astimezone(tz)
    at = time(schedule.hour, schedule.minute)
    fire = datetime.combine(local.date(), at, tzinfo=tz)
    if fire > local:
        fire = datetime.combine(local.date() - timedelta(days=1), at, tzinfo=tz)
    return as_utc(fire)


def digest_day(schedule: DigestSchedule, fire: datetime) -> str:
    """The local date a digest fired at ``fire`` belongs to (``2026-12-06``)."""
    return as_utc(fire).astimezone(schedule.tz).date().isoformat()


def digest_id(subscription_id: int, day: str) -> str:
    """The send's one id for (subscription, day): the outbox's claim key and the webhook-id."""
    return f"dig_{subscription_id}_{day}"


@dataclass(frozen=True, slots=True)
class DigestItem:
    account_service_id: int
    image_version_id: int
    label: str
    outcome: Outcome
    state: str
    progress: int
    seconds: int | None
    """Completed, failed, squashed: how long the job ran; stalled: how long since it last
    moved; running: since it started (or was first seen). None when upstream gave no times."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DailyDigest:
    id: str
    subscription_id: int
    day: str
    window_start: datetime
    window_end: datetime
    items: tuple[DigestItem, ...]

    def of(self, outcome: Outcome) -> tuple[DigestItem, ...]:
        return tuple(item for item in self.items if item.outcome == outcome)


def build_digest(
    subscription_id: int,
    day: str,
    window_end: datetime,
    events: Sequence[Event],
    before: Sequence[Event] = (),
) -> DailyDigest | None:
    """The digest of ``events`` (in the order they happened, all within the window): one item per
    image version, as its last event left it; None when there are none.

    ``before`` holds the last event before the window of jobs that may have none in it: a job
    still running (or queued, or stalled) a day after it last changed is the one most worth a
    line, so it is listed from that event; a finished one is not, nor one the window covers."""
    window_end = as_utc(window_end)
    in_window = {(e.account_service_id, e.image_version_id) for e in events}
    carried = [
        e
        for e in before
        if (e.account_service_id, e.image_version_id) not in in_window
        and e.current.state_id is not None
        and not e.current.is_terminal
    ]
    last: dict[tuple[int, int], Event] = {}
    first_seen: dict[tuple[int, int], datetime] = {}
    stalled_since: dict[tuple[int, int], datetime | None] = {}
    for event in [*carried, *events]:
        key = (event.account_service_id, event.image_version_id)
        first_seen.setdefault(key, as_utc(event.occurred_at))
        if event.type == STALLED:
            seconds = event.detail.get("stalled_seconds")
            since = as_utc(event.occurred_at)
            if isinstance(seconds, int | float):
                since -= timedelta(seconds=seconds)
            stalled_since[key] = since
        elif event.type in (RESUMED, STATE_CHANGED):
            stalled_since[key] = None
        if event.current.state_id is not None:
            last[key] = event
    items = [
        _item(event, first_seen[key], stalled_since.get(key), window_end)
        for key, event in last.items()
    ]
    if not items:
        return None
    items.sort(key=lambda i: (OUTCOMES.index(i.outcome), i.label, i.image_version_id))
    return DailyDigest(
        id=digest_id(subscription_id, day),
        subscription_id=subscription_id,
        day=day,
        window_start=window_end - WINDOW,
        window_end=window_end,
        items=tuple(items),
    )


def _item(
    event: Event, first_seen: datetime, stalled: datetime | None, window_end: datetime
) -> DigestItem:
    status = event.current
    outcome: Outcome
    if status.state_id == COMPLETE:
        outcome = "completed"
    elif status.state_id == FAILED:
        outcome = "failed"
    elif status.state_id == SQUASHED:
        outcome = "squashed"
    elif stalled is not None:
        outcome = "stalled"
    else:
        outcome = "running"
    seconds: int | None
    if status.is_terminal:
        seconds = (
            None
            if status.started is None or status.updated is None
            else _seconds(as_utc(status.updated) - as_utc(status.started))
        )
    elif stalled is not None:
        seconds = _seconds(window_end - stalled)
    else:
        seconds = _seconds(window_end - (as_utc(status.started) if status.started else first_seen))
    error = status.error.strip() if status.error and outcome in ("failed", "squashed") else None
    return DigestItem(
        account_service_id=event.account_service_id,
        image_version_id=event.image_version_id,
        label=event.label,
        outcome=outcome,
        state=state_name(status.state_id, fallback=status.state.strip() or "Unknown"),
        progress=status.progress,
        seconds=seconds,
        error=error or None,
    )


def _seconds(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds()))


def duration_text(seconds: int) -> str:
    """``4 min 12 s``, ``2 h 5 min``, ``3 d 4 h``: as long as it needs, no longer."""
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
