"""The timing detectors: stalled and resumed, ETA slips, overdue jobs, progress milestones, and our
own ETA estimate. Pure functions of two observations, what we remembered, and the time.

State changes are a diff of two statuses (:mod:`notifier.core.detector`); timing events need
memory across polls (when did the job last move, which ETA did we last announce, which milestone
was passed), kept in :class:`Tracking` and stored next to the job status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.core.events import ETA_CHANGED, OVERDUE, PROGRESS, RESUMED, STALLED, Detected
from notifier.core.status import CREATED, PENDING, QUEUED, RUNNING, JobStatus

WAITING_STATES = frozenset({CREATED, PENDING, QUEUED})


@dataclass(frozen=True, slots=True)
class DetectPolicy:
    """The timing detectors' thresholds; 0 (or no milestones) turns one off.

    ``[detect]`` in the configuration builds it; these defaults are the configuration's too.
    """

    stall_after_seconds: float = 900
    """Running with no change of progress or ``jobupdated`` for this long: stalled."""
    waiting_stall_after_seconds: float = 1800
    """Created, Pending or Queued for this long: stalled too."""
    eta_slip_seconds: float = 600
    """The ETA moved later by more than this: eta_changed (once per step this size)."""
    overdue_grace_seconds: float = 300
    """The ETA passed this long ago and the job is not finished: overdue."""
    progress_milestones: tuple[int, ...] = ()
    """Progress percentages that raise a progress event when crossed."""
    estimate_eta: bool = True
    """Without an upstream ETA while Running, estimate one from the progress rate."""


@dataclass(frozen=True, slots=True)
class Tracking:
    """What the timing detectors remember of one job between polls."""

    moved_at: datetime | None = None
    """When progress, ``jobupdated`` or the state last changed."""
    stalled: bool = False
    eta_baseline: datetime | None = None
    """The ETA slips are measured from: the last one announced (or first seen)."""
    overdue: bool = False
    milestone: int = 0
    """The highest progress milestone already announced."""
    rate_since: datetime | None = None
    """When the progress-rate estimate started: the first poll that saw the job Running."""
    rate_base_progress: int = 0


def estimate_eta(
    current: JobStatus, tracking: Tracking, now: datetime, settings: DetectPolicy
) -> JobStatus:
    """``current`` with our own ETA when upstream gives none while Running, else unchanged.

    The rate is the progress made since the job was first seen Running over the time that took;
    with no progress yet there is no estimate. Rounded to the minute so that an unchanged rate
    does not rewrite the stored status on every poll.
    """
    if current.eta is not None or current.state_id != RUNNING or not settings.estimate_eta:
        return current
    since = tracking.rate_since
    made = current.progress - tracking.rate_base_progress
    if since is None or made <= 0 or current.progress >= 100 or now <= since:
        return current
    per_second = made / (now - since).total_seconds()
    remaining = timedelta(seconds=(100 - current.progress) / per_second)
    eta = now + remaining
    eta = eta.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return replace(current, eta=eta, eta_estimated=True)


def detect_timing(
    previous: JobStatus | None,
    tracking: Tracking | None,
    current: JobStatus,
    state_since: datetime,
    now: datetime,
    settings: DetectPolicy,
) -> tuple[list[Detected], Tracking]:
    """Timing events from ``previous`` to ``current`` (ETA already estimated) and the new memory.

    ``state_since`` is when the current state began (now, if it just changed).
    """
    known = tracking if tracking is not None and previous is not None else Tracking()
    events: list[Detected] = []
    state_changed = previous is None or previous.state_id != current.state_id
    moved = (
        state_changed
        or previous is None
        or previous.progress != current.progress
        or previous.updated != current.updated
    )
    moved_at = now if moved or known.moved_at is None else known.moved_at

    def event(kind: str, detail: dict[str, Any]) -> None:
        events.append(Detected(kind, previous, current, detail))

    # Stalled and resumed. A waiting job only resumes by leaving its state: upstream may touch
    # jobupdated while it sits in the queue.
    stalled = known.stalled
    if stalled:
        waiting = previous is not None and previous.state_id in WAITING_STATES
        if state_changed or (moved and not waiting):
            stalled = False
            if not current.is_terminal:
                still_for = (now - (known.moved_at or now)).total_seconds()
                event(RESUMED, {"stalled_seconds": int(still_for)})
    if not stalled and not current.is_terminal:
        if current.state_id == RUNNING:
            threshold, since, why = settings.stall_after_seconds, moved_at, "no_progress"
        elif current.state_id in WAITING_STATES:
            threshold, since, why = settings.waiting_stall_after_seconds, state_since, "waiting"
        else:
            threshold, since, why = 0.0, now, ""
        still = (now - since).total_seconds()
        if threshold > 0 and still >= threshold:
            stalled = True
            event(
                STALLED,
                {"why": why, "stalled_seconds": int(still), "threshold_seconds": threshold},
            )

    # Our progress-rate clock starts on the first poll that sees the job Running.
    rate_since, rate_base = known.rate_since, known.rate_base_progress
    if current.state_id != RUNNING:
        rate_since, rate_base = None, 0
    elif state_changed or rate_since is None:
        rate_since, rate_base = now, current.progress

    # ETA slips: announced once per threshold, measured from the last ETA announced.
    baseline = known.eta_baseline if not state_changed else None
    if current.eta is not None and not current.is_terminal:
        if baseline is None or current.eta < baseline:
            baseline = current.eta
        elif settings.eta_slip_seconds > 0:
            slipped = (current.eta - baseline).total_seconds()
            if slipped > settings.eta_slip_seconds:
                event(
                    ETA_CHANGED,
                    {
                        "previous_eta": _rfc3339(baseline),
                        "eta": _rfc3339(current.eta),
                        "slipped_seconds": int(slipped),
                        "estimated": current.eta_estimated,
                    },
                )
                baseline = current.eta

    # Overdue: once per ETA; a new ETA in the future re-arms it.
    overdue = known.overdue
    if current.is_terminal or current.eta is None:
        overdue = False
    else:
        late = (now - current.eta).total_seconds()
        if late <= settings.overdue_grace_seconds:
            overdue = False
        elif not overdue:
            overdue = True
            event(OVERDUE, {"eta": _rfc3339(current.eta), "overdue_seconds": int(late)})

    # Milestones: one event for the highest one crossed since the last poll; a job that starts
    # over (a retry) re-arms the ones it fell back below.
    crossed = [m for m in settings.progress_milestones if m <= current.progress]
    reached = max(crossed, default=0)
    milestone = known.milestone
    if previous is None or current.is_terminal:
        milestone = reached  # a finished job says so itself; "90 %" after "Complete" is noise
    elif reached > milestone:
        milestone = reached
        event(PROGRESS, {"milestone": reached})
    elif reached < milestone:
        milestone = reached

    return events, Tracking(
        moved_at=moved_at,
        stalled=stalled,
        eta_baseline=baseline,
        overdue=overdue,
        milestone=milestone,
        rate_since=rate_since,
        rate_base_progress=rate_base,
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
