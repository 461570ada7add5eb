"""Sample events, one per event type: what ``webhook test`` sends and templates are tried on.

A template is rendered against every sample at config load, so that a template that breaks on,
say, a first sighting with no previous state fails at start-up and not at 3 a.m.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from notifier.core import events as model
from notifier.core.digest import DailyDigest, build_digest
from notifier.core.events import Event
from notifier.core.status import (
    COMPLETE,
    FAILED,
    QUEUED,
    RUNNING,
    SQUASHED,
    STATE_NAMES,
    JobStatus,
)

_AT = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)


def _status(state_id: int | None, progress: int, **changes: Any) -> JobStatus:
    status = JobStatus(
        image_version_id=567890,
        state_id=state_id,
        state=STATE_NAMES.get(state_id, "Unknown") if state_id is not None else "Unknown",
        progress=progress,
        eta=datetime(2026, 11, 28, 17, 10, tzinfo=UTC),
        error=None,
        failed_count=0,
        created=datetime(2026, 11, 28, 16, 50, tzinfo=UTC),
        started=datetime(2026, 11, 28, 16, 55, tzinfo=UTC),
        updated=datetime(2026, 11, 28, 17, 4, 1, tzinfo=UTC),
    )
    return replace(status, **changes)


def _event(
    type_: str,
    previous: JobStatus | None,
    current: JobStatus,
    detail: dict[str, Any] | None = None,
) -> Event:
    return Event(
        id="evt_sample_" + type_.replace(".", "_"),
        type=type_,
        occurred_at=_AT,
        account_service_id=1234,
        image_version_id=567890,
        label="EU fleet, build 1.4.2",
        previous=previous,
        current=current,
        detail=detail or {},
    )


def sample_event() -> Event:
    """The DESIGN.md example: a build that failed while running."""
    return _event(
        model.FAILED_EVENT,
        _status(RUNNING, 80),
        _status(FAILED, 80, error="Image locked by diffid 42", failed_count=1),
    )


def sample_events() -> list[Event]:
    """One event of every type in ``EVENT_TYPES``, shaped as the service emits it."""
    running = _status(RUNNING, 40)
    events = [
        _event(model.STATE_CHANGED, None, _status(QUEUED, 0, started=None)),
        _event(model.STATE_CHANGED, _status(QUEUED, 0), running),
        _event(model.COMPLETED, running, _status(COMPLETE, 100)),
        sample_event(),
        _event(model.SQUASHED_EVENT, running, _status(SQUASHED, 40)),
        _event(
            model.STALLED,
            running,
            running,
            {"why": "no_progress", "stalled_seconds": 900, "threshold_seconds": 900},
        ),
        _event(model.RESUMED, running, _status(RUNNING, 45), {"stalled_seconds": 1200}),
        _event(
            model.ETA_CHANGED,
            running,
            _status(RUNNING, 40, eta=datetime(2026, 11, 28, 17, 30, tzinfo=UTC)),
            {
                "previous_eta": "2026-11-28T17:10:00Z",
                "eta": "2026-11-28T17:30:00Z",
                "slipped_seconds": 1200,
                "estimated": False,
            },
        ),
        _event(
            model.OVERDUE, running, running, {"eta": "2026-11-28T17:10:00Z", "overdue_seconds": 600}
        ),
        _event(model.PROGRESS, running, _status(RUNNING, 50), {"milestone": 50}),
        _event(
            model.POLL_FAILING,
            None,
            _status(None, 0, eta=None, created=None, started=None, updated=None),
            {
                "reason": "credentials_rejected",
                "message": "Clanforge rejected the access key",
                "consecutive_failures": 3,
                "paused": True,
                "credential": "default",
            },
        ),
        _event(model.POLL_RECOVERED, None, running, {"consecutive_failures": 3}),
    ]
    missing = set(model.EVENT_TYPES) - {e.type for e in events}
    assert not missing, f"no sample for {sorted(missing)}"
    return events


def sample_digest() -> DailyDigest:
    """A day with one job of each outcome, built from events as the service builds it."""
    day_end = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)

    def job(ivid: int, label: str, previous: JobStatus | None, current: JobStatus) -> Event:
        return replace(
            _event(model.STATE_CHANGED, previous, current),
            id=f"evt_digest_{ivid}",
            image_version_id=ivid,
            label=label,
        )

    running = _status(RUNNING, 40)
    events = [
        job(567890, "EU fleet, build 1.4.2", running, _status(COMPLETE, 100)),
        job(
            567891,
            "US fleet, build 1.4.2",
            running,
            _status(FAILED, 80, error="Image locked by diffid 42", failed_count=1),
        ),
        job(567892, "APAC fleet, build 1.4.2", None, running),
        replace(
            job(567893, "Staging, build 1.5.0-rc1", None, running),
            type=model.STALLED,
            detail={"why": "no_progress", "stalled_seconds": 1800},
        ),
    ]
    digest = build_digest(7, "2026-11-29", day_end, events)
    assert digest is not None
    return digest
