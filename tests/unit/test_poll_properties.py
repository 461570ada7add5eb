"""Property tests over whole poll histories: any mix of statuses and failures, through the same
pure plan functions the poller uses, keeps the promises subscribers rely on."""

from __future__ import annotations

import hashlib
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
    PollPolicy,
    plan_failure,
    plan_success,
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
    """Where a poll history leaves a watch: its memory as the store keeps it, the events, the
    last status observed, the reply behind the stored status, and the time of the last poll."""

    watch: ClaimedWatch
    events: list[Event]
    last: JobStatus | None
    now: datetime
    stored_reply: JobStatus | None = None


def digest(reply: JobStatus) -> bytes:
    """A reply's digest: the same for the same reply, as the client's is for the same bytes."""
    return hashlib.blake2b(repr(reply).encode(), digest_size=16).digest()


def replay(
    history: list[tuple[str, int | str | None, int, int | None]], detect: DetectPolicy = DETECT
) -> Replay:
    """Every poll of ``history``, one a minute, through the plan functions the poller uses, each
    plan kept as the store keeps it."""
    counter = itertools.count()
    result = Replay(ClaimedWatch(1, 1234, 567890, "x", 0, None, None), [], None, T0)
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
            plan = plan_success(
                watch, status, now, POLL, lambda: f"e{next(counter)}", detect, digest(status)
            )
            result.last = status
            if plan.status is not None:
                result.stored_reply = status
        result.events.extend(plan.events)
        written = plan.status is not None
        stored = plan.status if written else watch.previous
        result.watch = ClaimedWatch(
            1,
            1234,
            567890,
            "x",
            plan.poll_errors,
            plan.status if written else watch.previous,
            plan.state_since if written else watch.state_since,
            plan.tracking if written else watch.tracking,
            plan.poll_failing,
            reply_digest=plan.reply_digest if written else watch.reply_digest,
            quiet_until=plan.quiet_until,
            state_id=None if stored is None else stored.state_id,
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
    watch = ClaimedWatch(1, 1234, 567890, "x", 0, None, None)
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
    """Whenever the stored skip lets the poller leave a repeated reply unparsed, planning it in
    full would have made no event, written no status and scheduled the same next poll: skipping
    loses nothing. This holds the plan's ``quiet_until`` to the rules it summarises."""
    detect = replace(
        DETECT,
        estimate_eta=estimate,
        stall_after_seconds=stall_after,
        waiting_stall_after_seconds=waiting_stall_after,
    )
    done = replay(history, detect)
    watch, reply, now = done.watch, done.stored_reply, done.now
    if reply is None:
        return
    later = now + timedelta(seconds=later_seconds)
    if watch.unchanged_digest(later) != digest(reply):
        return  # this poll is planned in full
    full = plan_success(watch, reply, later, POLL, lambda: "never", detect, digest(reply))
    assert full.events == ()
    assert full.status is None
    assert (full.poll_errors, full.poll_failing, full.shown_changed) == (0, False, False)
    assert full.next_poll_at == watch.unchanged_next_poll(later, POLL)


def test_a_stall_deadline_makes_the_same_reply_planned_again() -> None:
    running = make_status(4, 40)
    new = ClaimedWatch(1, 1234, 567890, "x", 0, None, None)
    first = plan_success(new, running, T0, POLL, str, DETECT, b"d")
    assert first.quiet_until == T0 + timedelta(seconds=DETECT.stall_after_seconds)
    watch = ClaimedWatch(
        1,
        1234,
        567890,
        "x",
        0,
        first.status,
        T0,
        first.tracking,
        reply_digest=b"d",
        quiet_until=first.quiet_until,
    )
    just_before = T0 + timedelta(seconds=DETECT.stall_after_seconds - 1)
    assert watch.unchanged_digest(just_before) == b"d"
    assert watch.unchanged_digest(just_before + timedelta(seconds=1)) is None


@given(st.sampled_from([UNAVAILABLE, BAD_REPLY, CREDENTIALS_REJECTED, NOT_FOUND]))
def test_after_a_failed_poll_the_next_reply_is_planned_whatever_its_bytes(reason: str) -> None:
    """It has errors to clear or a recovery to announce."""
    watch = ClaimedWatch(1, 1234, 567890, "x", 0, make_status(3), T0, Tracking(), reply_digest=b"d")
    plan = plan_failure(watch, UpstreamError(reason, "boom"), T0, POLL)
    assert plan.quiet_until == T0
    assert watch._replace(quiet_until=plan.quiet_until).unchanged_digest(T0) is None


def test_a_rate_limited_poll_leaves_the_next_reply_as_quiet_as_it_was() -> None:
    watch = ClaimedWatch(1, 1234, 567890, "x", 0, make_status(3), T0, Tracking(), reply_digest=b"d")
    plan = plan_failure(watch, UpstreamError(RATE_LIMITED, "slow down", retry_after=5), T0, POLL)
    assert plan.quiet_until is None
    assert watch.unchanged_digest(T0 + timedelta(hours=1)) == b"d"


def test_a_job_with_our_eta_estimate_is_planned_in_full_on_every_poll() -> None:
    """Our estimate moves with the clock even when upstream's reply does not."""
    ids = itertools.count()
    watch = ClaimedWatch(1, 1234, 567890, "x", 0, None, None)
    for minute, progress in enumerate((10, 30)):
        now = T0 + timedelta(minutes=minute)
        plan = plan_success(
            watch, make_status(4, progress), now, POLL, lambda: f"e{next(ids)}", DETECT, b"d"
        )
        watch = ClaimedWatch(
            1,
            1234,
            567890,
            "x",
            0,
            plan.status or watch.previous,
            plan.state_since,
            plan.tracking,
            reply_digest=b"d",
            quiet_until=plan.quiet_until,
        )
    assert plan.quiet_until == now
    assert watch.previous is not None
    assert watch.previous.eta_estimated
    later = T0 + timedelta(minutes=2, seconds=30)  # before the job could count as stalled
    assert watch.unchanged_digest(later) is None
    again = plan_success(watch, make_status(4, 30), later, POLL, str)
    assert again.status is not None  # the estimate moved
