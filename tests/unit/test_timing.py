"""Stalled, resumed, ETA slips, overdue, milestones and our own ETA: the pure timing detectors."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from notifier.core.events import ETA_CHANGED, OVERDUE, PROGRESS, RESUMED, STALLED
from notifier.core.status import JobStatus
from notifier.core.timing import DetectPolicy, Tracking, detect_timing, estimate_eta
from tests.conftest import T0, make_status

DETECT = DetectPolicy(
    stall_after_seconds=600,
    waiting_stall_after_seconds=1800,
    eta_slip_seconds=300,
    overdue_grace_seconds=120,
    progress_milestones=(50, 90),
)


class Job:
    """Feeds a sequence of observations through the detector the way the poll plan does."""

    def __init__(self, first: JobStatus, settings: DetectPolicy = DETECT) -> None:
        self.settings = settings
        self.previous: JobStatus | None = None
        self.tracking: Tracking | None = None
        self.state_since = T0
        self.seen: list[tuple[str, dict[str, object]]] = []
        self.observe(first, T0)

    def observe(self, status: JobStatus, now: datetime) -> list[str]:
        if self.previous is None or self.previous.state_id != status.state_id:
            self.state_since = now
        known = self.tracking if self.tracking is not None else Tracking()
        current = estimate_eta(status, known, now, self.settings)
        events, self.tracking = detect_timing(
            self.previous, self.tracking, current, self.state_since, now, self.settings
        )
        self.previous = current
        self.seen.extend((e.type, dict(e.detail)) for e in events)
        return [e.type for e in events]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_running_job_without_progress_stalls_once_and_resumes_when_it_moves() -> None:
    job = Job(make_status(4, 30))
    assert job.observe(make_status(4, 30), at(5)) == []
    assert job.observe(make_status(4, 30), at(10)) == [STALLED]
    assert job.observe(make_status(4, 30), at(15)) == []
    assert job.observe(make_status(4, 31), at(16)) == [RESUMED]
    assert job.seen[0][1]["why"] == "no_progress"


def test_a_new_jobupdated_counts_as_moving() -> None:
    job = Job(make_status(4, 30))
    for minute in range(1, 30):
        status = make_status(4, 30, updated=at(minute))
        assert job.observe(status, at(minute)) == []


def test_job_waiting_in_the_queue_too_long_is_stalled_and_resumes_when_it_runs() -> None:
    job = Job(make_status(3))
    assert job.observe(make_status(3, updated=at(20)), at(20)) == []
    assert job.observe(make_status(3, updated=at(31)), at(31)) == [STALLED]
    # Upstream touching jobupdated does not make a queued job move.
    assert job.observe(make_status(3, updated=at(40)), at(40)) == []
    assert job.observe(make_status(4, 1), at(41)) == [RESUMED]
    assert job.seen[0][1]["why"] == "waiting"


def test_a_stalled_job_that_finishes_gets_no_resumed() -> None:
    job = Job(make_status(4, 30))
    job.observe(make_status(4, 30), at(11))
    assert job.observe(make_status(5, 100), at(12)) == []


def test_stall_detection_is_off_at_zero() -> None:
    job = Job(make_status(4, 30), replace(DETECT, stall_after_seconds=0))
    assert job.observe(make_status(4, 30), at(600)) == []


def test_eta_slip_is_reported_once_per_threshold() -> None:
    job = Job(make_status(4, 10, eta=at(30)))
    assert job.observe(make_status(4, 11, eta=at(34)), at(1)) == []
    assert job.observe(make_status(4, 12, eta=at(36)), at(2)) == [ETA_CHANGED]
    assert job.seen[-1][1]["previous_eta"] == "2026-11-28T17:30:00Z"
    assert job.seen[-1][1]["eta"] == "2026-11-28T17:36:00Z"
    # Measured from the ETA announced last: 4 more minutes is under the threshold again.
    assert job.observe(make_status(4, 13, eta=at(40)), at(3)) == []
    assert job.observe(make_status(4, 14, eta=at(42)), at(4)) == [ETA_CHANGED]


def test_an_earlier_eta_is_no_slip() -> None:
    job = Job(make_status(4, 10, eta=at(30)))
    assert job.observe(make_status(4, 20, eta=at(10)), at(1)) == []


def test_overdue_once_after_the_grace_and_again_for_a_new_eta() -> None:
    job = Job(make_status(4, 10, eta=at(10)))
    assert job.observe(make_status(4, 20, eta=at(10)), at(11)) == []
    assert job.observe(make_status(4, 30, eta=at(10)), at(13)) == [OVERDUE]
    assert job.observe(make_status(4, 35, eta=at(10)), at(20)) == []
    assert job.observe(make_status(4, 40, eta=at(30)), at(21)) == [ETA_CHANGED]
    assert job.observe(make_status(4, 45, eta=at(30)), at(33)) == [OVERDUE]


def test_finished_job_is_never_overdue() -> None:
    job = Job(make_status(4, 10, eta=at(10)))
    assert job.observe(make_status(5, 100, eta=at(10)), at(60)) == []


def test_each_milestone_once_and_the_highest_when_several_are_crossed() -> None:
    job = Job(make_status(4, 10))
    assert job.observe(make_status(4, 49), at(1)) == []
    assert job.observe(make_status(4, 50), at(2)) == [PROGRESS]
    assert job.observe(make_status(4, 60), at(3)) == []
    job2 = Job(make_status(4, 10))
    assert job2.observe(make_status(4, 95), at(1)) == [PROGRESS]
    assert job2.seen == [(PROGRESS, {"milestone": 90})]


def test_a_retried_job_announces_milestones_again() -> None:
    job = Job(make_status(4, 10))
    job.observe(make_status(4, 60), at(1))
    job.observe(make_status(6, 60), at(2))
    job.observe(make_status(3, 0), at(3))
    job.observe(make_status(4, 5), at(4))
    assert job.observe(make_status(4, 55), at(5)) == [PROGRESS]


def test_eta_is_estimated_from_the_progress_rate_while_running_without_one() -> None:
    job = Job(make_status(4, 20))
    job.observe(make_status(4, 40), at(10))
    assert job.previous is not None
    # 20 points in 10 minutes: 60 more take 30 minutes; rounded up to the next minute.
    assert job.previous.eta == at(41)
    assert job.previous.eta_estimated


def test_no_estimate_before_any_progress_or_when_upstream_gives_an_eta() -> None:
    job = Job(make_status(4, 20))
    job.observe(make_status(4, 20), at(10))
    assert job.previous is not None
    assert job.previous.eta is None
    job.observe(make_status(4, 30, eta=at(50)), at(11))
    assert job.previous.eta == at(50)
    assert not job.previous.eta_estimated


def test_estimating_can_be_turned_off() -> None:
    job = Job(make_status(4, 20), replace(DETECT, estimate_eta=False))
    job.observe(make_status(4, 40), at(10))
    assert job.previous is not None
    assert job.previous.eta is None
