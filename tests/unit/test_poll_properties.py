"""Property tests over whole poll histories: any mix of statuses and failures, through the same
pure plan functions the poller uses, keeps the promises subscribers rely on."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.clanforge.reply import parse_install_status_reply
from notifier.core.events import (
    POLL_FAILING,
    POLL_RECOVERED,
    STATE_CHANGED,
    TERMINAL_EVENT_FOR_STATE,
    Event,
)
from notifier.core.poll_plan import (
    ClaimedWatch,
    DueWatch,
    PollPolicy,
    known_digest,
    plan_failure,
    plan_success,
    quiet_next_poll,
)
from notifier.core.status import TERMINAL_STATES, JobStatus
from notifier.core.timing import DetectPolicy, Tracking
from notifier.core.upstream_errors import (
    BAD_REPLY,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UpstreamError,
)
from notifier.notify.payload import webhook_payload
from tests.conftest import T0, make_status

POLL = PollPolicy(interval_seconds=30, running_interval_seconds=10, failure_threshold=3)
DETECT = DetectPolicy(
    stall_after_seconds=120,
    waiting_stall_after_seconds=300,
    eta_slip_seconds=60,
    overdue_grace_seconds=30,
    progress_milestones=(25, 50, 75),
)

observations = st.one_of(
    st.tuples(
        st.just("status"),
        st.sampled_from([1, 2, 3, 4, 4, 4, 5, 6, 7, None, 9]),
        st.integers(0, 100),
        st.none() | st.integers(0, 7200),
    ),
    st.tuples(
        st.just("error"),
        st.sampled_from([UNAVAILABLE, BAD_REPLY, RATE_LIMITED]),
        st.just(0),
        st.none(),
    ),
)


@dataclass
class Replay:
    """Where a poll history leaves a watch: its memory, the events, the last status and time."""

    watch: DueWatch
    events: list[Event]
    last: JobStatus | None
    now: datetime


def replay(
    history: list[tuple[str, int | str | None, int, int | None]], detect: DetectPolicy = DETECT
) -> Replay:
    """Every poll of ``history``, one a minute, through the plan functions the poller uses."""
    counter = itertools.count()
    result = Replay(DueWatch(1, 1234, 567890, "x", 0, None, None), [], None, T0)
    for minute, (kind, value, progress, eta_offset) in enumerate(history):
        result.now = now = T0 + timedelta(minutes=minute)
        watch = result.watch
        if kind == "error":
            assert isinstance(value, str)
            plan = plan_failure(
                watch, UpstreamError(value, "boom"), now, POLL, lambda: f"e{next(counter)}"
            )
        else:
            assert value is None or isinstance(value, int)
            eta = None if eta_offset is None else T0 + timedelta(seconds=eta_offset)
            status = make_status(value, progress, eta=eta, state=None if value != 9 else "Odd")
            plan = plan_success(watch, status, now, POLL, lambda: f"e{next(counter)}", detect)
            result.last = status
        result.events.extend(plan.events)
        result.watch = DueWatch(
            1,
            1234,
            567890,
            "x",
            plan.poll_errors,
            plan.status if plan.status is not None else watch.previous,
            plan.state_since if plan.state_since is not None else watch.state_since,
            plan.tracking if plan.tracking is not None else watch.tracking,
            plan.poll_failing,
        )
    return result


def run(history: list[tuple[str, int | str | None, int, int | None]]) -> list[Event]:
    """Every event the plan functions produce for ``history``, one poll a minute."""
    return replay(history).events


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=40))
def test_state_changes_chain_and_terminal_events_come_once_per_entry(
    history: list[tuple[str, int | str | None, int, int | None]],
) -> None:
    events = run(history)
    changes = [e for e in events if e.type == STATE_CHANGED]
    for before, after in itertools.pairwise(changes):
        assert after.previous is not None
        assert after.previous.state_id == before.current.state_id
    for change in changes:
        assert change.previous is None or change.previous.state_id != change.current.state_id
    terminal_types = set(TERMINAL_EVENT_FOR_STATE.values())
    terminal = [e for e in events if e.type in terminal_types]
    entries = [c for c in changes if c.current.state_id in TERMINAL_STATES]
    assert len(terminal) == len(entries)


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=40))
def test_health_events_alternate_and_need_a_run_of_failures(
    history: list[tuple[str, int | str | None, int, int | None]],
) -> None:
    events = run(history)
    health = [e.type for e in events if e.type in (POLL_FAILING, POLL_RECOVERED)]
    assert health == [POLL_FAILING, POLL_RECOVERED] * (len(health) // 2) + (
        [POLL_FAILING] if len(health) % 2 else []
    )
    for event in events:
        if event.type == POLL_FAILING:
            assert event.detail["consecutive_failures"] >= POLL.failure_threshold
            assert event.detail["reason"] != RATE_LIMITED


@given(st.lists(st.sampled_from([UNAVAILABLE, BAD_REPLY]), min_size=1, max_size=20))
def test_consecutive_failures_never_make_a_state_event(reasons: list[str]) -> None:
    events = run([("status", 4, 50, None)] + [("error", r, 0, None) for r in reasons])
    assert [e.type for e in events if not e.type.startswith("watch.")][:1] == [STATE_CHANGED]
    assert sum(1 for e in events if e.type == STATE_CHANGED) == 1


@given(st.sampled_from([CREDENTIALS_REJECTED, NOT_FOUND]))
def test_a_pausing_error_is_reported_once_even_before_the_threshold(reason: str) -> None:
    watch = DueWatch(1, 1234, 567890, "x", 0, None, None)
    plan = plan_failure(watch, UpstreamError(reason, "no"), T0, POLL)
    assert [e.type for e in plan.events] == [POLL_FAILING]
    assert plan.next_poll_at is None


install_entries = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "target_imageversionid": st.none()
            | st.integers(-5, 10**12)
            | st.text(max_size=5)
            | st.booleans(),
            "jobstateid": st.integers(0, 9),
            "machine": st.text(max_size=10),
        },
    )
    | st.integers()
    | st.none(),
    max_size=20,
)


@given(
    status=st.sampled_from([200, 200, 401, 403, 429, 500, 503]),
    data=st.one_of(
        st.fixed_dictionaries({"installs": install_entries}),
        st.fixed_dictionaries({"installs": st.none() | st.text() | st.integers()}),
        st.fixed_dictionaries({"success": st.booleans(), "installs": install_entries}),
        st.lists(st.integers(), max_size=3),
        st.text(max_size=20),
    ),
)
def test_any_install_status_reply_gives_distinct_positive_ids_or_an_upstream_error(
    status: int, data: object
) -> None:
    body = json.dumps(data).encode()
    result: list[int] | UpstreamError
    try:
        result = parse_install_status_reply(status, body, account_service_id=1234)
    except UpstreamError as error:
        result = error
    if isinstance(result, UpstreamError):
        assert result.message
        assert "\n" not in result.message
        return
    found = result
    assert 200 <= status < 300
    assert len(found) == len(set(found))
    assert all(isinstance(ivid, int) and ivid > 0 for ivid in found)


def test_install_status_lists_each_image_version_once_in_reply_order() -> None:
    body = json.dumps(
        {
            "installs": [
                {"target_imageversionid": 702, "machine": "a"},
                {"target_imageversionid": "701", "machine": "a"},
                {"target_imageversionid": 702, "machine": "b"},
                {"machine": "c"},
            ]
        }
    ).encode()
    assert parse_install_status_reply(200, body, account_service_id=1) == [702, 701]


_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "webhook-payload.schema.json").read_text(
        encoding="utf-8"
    )
)
_VALIDATOR = jsonschema.Draft202012Validator(
    _SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@settings(max_examples=200, deadline=None)
@given(st.lists(observations, min_size=1, max_size=40))
def test_every_event_a_poll_history_makes_has_a_payload_valid_against_the_schema(
    history: list[tuple[str, int | str | None, int, int | None]],
) -> None:
    for event in run(history):
        _VALIDATOR.validate(webhook_payload(event))


def claimed_from(watch: DueWatch, digest: bytes | None) -> ClaimedWatch:
    """The claim's view of a watch's stored memory (the store selects the same columns)."""
    status, tracking = watch.previous, watch.tracking or Tracking()
    return ClaimedWatch(
        watch_id=watch.watch_id,
        account_service_id=watch.account_service_id,
        image_version_id=watch.image_version_id,
        poll_errors=watch.poll_errors,
        poll_failing=watch.poll_failing,
        interval_seconds=watch.interval_seconds,
        reply_digest=digest if status is not None else None,
        state_id=None if status is None else status.state_id,
        progress=0 if status is None else status.progress,
        eta=None if status is None else status.eta,
        eta_estimated=False if status is None else status.eta_estimated,
        state_since=watch.state_since,
        moved_at=tracking.moved_at,
        stalled=tracking.stalled,
        overdue=tracking.overdue,
        rate_base_progress=tracking.rate_base_progress,
    )


@settings(max_examples=600, deadline=None)
@given(
    st.lists(observations, min_size=1, max_size=25),
    st.integers(0, 4 * 3600),
    st.booleans(),
    st.sampled_from([0, 120, 3600]),
    st.sampled_from([0, 300, 7200]),
)
def test_a_reply_settled_unparsed_is_exactly_what_full_planning_would_decide(
    history: list[tuple[str, int | str | None, int, int | None]],
    later_seconds: int,
    estimate: bool,
    stall_after: int,
    waiting_stall_after: int,
) -> None:
    """Whenever the poller skips parsing a repeated reply, planning it in full would have made no
    event, written no status and scheduled the same next poll: skipping loses nothing."""
    detect = replace(
        DETECT,
        estimate_eta=estimate,
        stall_after_seconds=stall_after,
        waiting_stall_after_seconds=waiting_stall_after,
    )
    done = replay(history, detect)
    watch, last, now = done.watch, done.last, done.now
    if last is None or watch.previous is None:
        return
    later = now + timedelta(seconds=later_seconds)
    claimed = claimed_from(watch, b"digest-of-last")
    if known_digest(claimed, later, POLL, detect) is None:
        return  # this poll is planned in full
    full = plan_success(watch, last, later, POLL, lambda: "never", detect)
    assert full.events == ()
    assert full.status is None
    assert (full.poll_errors, full.poll_failing, full.shown_changed) == (0, False, False)
    assert full.next_poll_at == quiet_next_poll(claimed, later, POLL)


def test_a_stall_deadline_makes_the_same_reply_planned_again() -> None:
    running = make_status(4, 40)
    first = plan_success(DueWatch(1, 1234, 567890, "x", 0, None, None), running, T0, POLL, str)
    assert first.tracking is not None
    watch = DueWatch(1, 1234, 567890, "x", 0, first.status, T0, first.tracking)
    claimed = claimed_from(watch, b"d")
    just_before = T0 + timedelta(seconds=DETECT.stall_after_seconds - 1)
    assert known_digest(claimed, just_before, POLL, DETECT) == b"d"
    assert known_digest(claimed, just_before + timedelta(seconds=1), POLL, DETECT) is None


def test_a_watch_with_poll_errors_is_planned_in_full_whatever_the_reply() -> None:
    watch = DueWatch(1, 1234, 567890, "x", 2, make_status(3), T0, Tracking(moved_at=T0))
    assert known_digest(claimed_from(watch, b"d"), T0, POLL, DETECT) is None


def test_a_job_with_our_eta_estimate_is_planned_in_full_on_every_poll() -> None:
    """Our estimate moves with the clock even when upstream's reply does not."""
    ids = itertools.count()
    watch = DueWatch(1, 1234, 567890, "x", 0, None, None)
    for minute, progress in enumerate((10, 30)):
        now = T0 + timedelta(minutes=minute)
        plan = plan_success(watch, make_status(4, progress), now, POLL, lambda: f"e{next(ids)}")
        watch = DueWatch(
            1, 1234, 567890, "x", 0, plan.status or watch.previous, plan.state_since, plan.tracking
        )
    assert watch.previous is not None
    assert watch.previous.eta_estimated
    later = T0 + timedelta(minutes=2, seconds=30)  # before the job could count as stalled
    assert known_digest(claimed_from(watch, b"d"), later, POLL, DETECT) is None
    again = plan_success(watch, make_status(4, 30), later, POLL, str)
    assert again.status is not None  # the estimate moved
