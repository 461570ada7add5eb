"""What a poll means: schedules by state, events, back-off on errors, delivery fan-out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from notifier.core.poll_plan import (
    PollPolicy,
    next_poll_at,
    plan_deliveries,
    plan_failure,
    plan_refreshes,
    plan_success,
)
from notifier.core.timing import Tracking
from notifier.core.upstream_errors import (
    ACCESS_DENIED,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UpstreamError,
)
from notifier.polling.poller import start_offsets
from tests.conftest import T0, make_status, make_subscription
from tests.support.claimed import due, ids

POLL = PollPolicy(
    interval_seconds=30,
    running_interval_seconds=10,
    failed_interval_seconds=300,
    failed_linger_seconds=3600,
)


@pytest.mark.parametrize(
    ("state_id", "after"),
    [(1, 60), (2, 60), (3, 30), (4, 10), (None, 30)],
)
def test_unfinished_jobs_are_polled_again_at_their_interval(
    state_id: int | None, after: int
) -> None:
    assert next_poll_at(state_id, T0, T0, POLL) == T0 + timedelta(seconds=after)


@pytest.mark.parametrize("state_id", [5, 7])
def test_complete_and_squashed_jobs_stop_polling(state_id: int) -> None:
    assert next_poll_at(state_id, T0, T0, POLL) is None


def test_failed_job_lingers_slowly_then_stops() -> None:
    assert next_poll_at(6, T0, T0 + timedelta(minutes=10), POLL) == T0 + timedelta(minutes=15)
    assert next_poll_at(6, T0, T0 + timedelta(hours=1), POLL) is None


def test_first_sighting_stores_status_and_emits_state_change() -> None:
    plan = plan_success(due(), make_status(3), T0, POLL, ids())
    assert plan.first_sighting
    assert plan.status == make_status(3)
    assert [e.type for e in plan.events] == ["imageversion.state_changed"]
    assert plan.events[0].label == "EU fleet"
    assert plan.events[0].id == "evt_1"
    assert plan.state_since == T0


def test_unchanged_status_writes_nothing_and_emits_nothing() -> None:
    steady = Tracking(moved_at=T0 - timedelta(minutes=1), rate_since=T0, rate_base_progress=40)
    plan = plan_success(
        due(make_status(4, 40), tracking=steady), make_status(4, 40), T0, POLL, ids()
    )
    assert plan.status is None
    assert plan.events == ()
    assert plan.state_since == T0 - timedelta(minutes=3)
    assert plan.next_poll_at == T0 + timedelta(seconds=10)


def test_progress_change_is_stored_without_event() -> None:
    plan = plan_success(due(make_status(4, 40)), make_status(4, 60), T0, POLL, ids())
    assert plan.status is not None
    assert plan.status.progress == 60
    assert plan.events == ()


def test_progress_or_eta_only_change_plans_a_refresh_per_slack_channel() -> None:
    eta = T0 + timedelta(minutes=30)
    moved = plan_success(due(make_status(4, 40)), make_status(4, 41), T0, POLL, ids())
    later = plan_success(
        due(make_status(4, 40, eta=eta)),
        make_status(4, 40, eta=eta + timedelta(minutes=2)),
        T0,
        POLL,
        ids(),
    )
    slack = make_subscription(1, kind="slack_channel", channel="C0BUILDS")
    hook = make_subscription(2)
    slack_hook = make_subscription(3, kind="slack_webhook", host="https://hooks.slack.com")
    planned = plan_refreshes([moved, later], [slack, hook, slack_hook], [])
    assert [(r.subscription_id, r.watch_id) for r in planned] == [(1, 7), (1, 7)]


def test_unchanged_poll_or_state_change_plans_no_refresh() -> None:
    slack = make_subscription(1, kind="slack_channel", channel="C0BUILDS")
    unchanged = plan_success(due(make_status(4, 40)), make_status(4, 40), T0, POLL, ids())
    first = plan_success(due(), make_status(4, 40), T0, POLL, ids())
    state = plan_success(due(make_status(3, 0)), make_status(4, 40), T0, POLL, ids())
    plans = [unchanged, first, state]
    assert [p.shown_changed for p in plans] == [False, False, False]
    assert plan_refreshes(plans, [slack], plan_deliveries(plans, [slack])) == []


def test_a_pair_already_getting_a_delivery_this_tick_needs_no_refresh() -> None:
    eta = T0 + timedelta(minutes=30)
    slipped = plan_success(
        due(make_status(4, 40, eta=eta), tracking=Tracking(moved_at=T0, eta_baseline=eta)),
        make_status(4, 40, eta=eta + timedelta(hours=1)),
        T0,
        POLL,
        ids(),
    )
    assert [e.type for e in slipped.events] == ["imageversion.eta_changed"]
    everything = make_subscription(1, kind="slack_channel", channel="C0BUILDS")
    failures = make_subscription(
        2, kind="slack_channel", channel="C0FAIL", event_types=frozenset({"imageversion.failed"})
    )
    subscriptions = [everything, failures]
    deliveries = plan_deliveries([slipped], subscriptions)
    planned = plan_refreshes([slipped], subscriptions, deliveries)
    assert [r.subscription_id for r in planned] == [2]


def test_failed_poll_backs_off_and_keeps_the_error() -> None:
    error = UpstreamError(UNAVAILABLE, "Clanforge answered 503", status=503)
    # rand 1.0 is the top of the jitter band (previous step .. this one): the schedule's delay.
    first = plan_failure(due(make_status(4)), error, T0, POLL, rand=lambda: 1.0)
    third = plan_failure(due(make_status(4), poll_errors=2), error, T0, POLL, rand=lambda: 1.0)
    assert first.next_poll_at == T0 + timedelta(seconds=30)
    assert third.next_poll_at == T0 + timedelta(seconds=120)
    assert third.poll_errors == 3
    assert third.last_poll_error == "Clanforge answered 503"
    assert first.status is None
    assert first.events == ()


def test_rate_limited_poll_waits_at_least_retry_after() -> None:
    error = UpstreamError(RATE_LIMITED, "slow down", status=429, retry_after=600)
    assert plan_failure(due(), error, T0, POLL).next_poll_at == T0 + timedelta(seconds=600)


def test_each_event_goes_to_every_matching_subscription_in_order() -> None:
    plan = plan_success(due(make_status(4)), make_status(6, error="boom"), T0, POLL, ids())
    everything = make_subscription(1)
    failures_only = make_subscription(2, event_types=frozenset({"imageversion.failed"}))
    other_asid = make_subscription(3, account_service_ids=frozenset({99}))
    planned = plan_deliveries([plan], [everything, failures_only, other_asid])
    assert [(d.event_id, d.subscription_id) for d in planned] == [
        ("evt_1", 1),
        ("evt_2", 1),
        ("evt_2", 2),
    ]


FAILING_POLL = replace(POLL, failure_threshold=3)


def test_poll_failing_is_raised_once_at_the_threshold_and_recovered_once() -> None:
    error = UpstreamError(UNAVAILABLE, "Clanforge answered 503", status=503)
    make_id = ids()
    plans = []
    watch = due(make_status(4, 40))
    for _ in range(5):
        plan = plan_failure(watch, error, T0, FAILING_POLL, make_id)
        plans.append(plan)
        watch = watch._replace(poll_errors=plan.poll_errors, poll_failing=plan.poll_failing)
    assert [[e.type for e in p.events] for p in plans] == [[], [], ["watch.poll_failing"], [], []]
    failing = plans[2].events[0]
    assert failing.detail == {
        "reason": "unavailable",
        "message": "Clanforge answered 503",
        "consecutive_failures": 3,
        "paused": False,
    }
    assert failing.current == make_status(4, 40)  # the last known status, not a new one
    recovered = plan_success(watch, make_status(4, 40), T0, FAILING_POLL, make_id)
    assert [e.type for e in recovered.events] == ["watch.poll_recovered"]
    assert recovered.events[0].detail == {"consecutive_failures": 5}
    assert not recovered.poll_failing


@pytest.mark.parametrize("reason", [CREDENTIALS_REJECTED, ACCESS_DENIED, NOT_FOUND])
def test_refused_credentials_and_unknown_image_versions_pause_at_once(reason: str) -> None:
    error = UpstreamError(reason, "Clanforge answered 401", status=401, credential="eu")
    plan = plan_failure(due(), error, T0, FAILING_POLL, ids())
    assert plan.next_poll_at is None
    assert plan.paused_reason == "Clanforge answered 401"
    assert [e.type for e in plan.events] == ["watch.poll_failing"]
    assert plan.events[0].detail["paused"] is True
    assert plan.events[0].detail["credential"] == "eu"
    assert plan.events[0].current.state == "Unknown"  # never seen


def test_rate_limited_poll_is_no_failure_of_the_watch() -> None:
    error = UpstreamError(RATE_LIMITED, "slow down", status=429, retry_after=3)
    plan = plan_failure(due(poll_errors=2), error, T0, FAILING_POLL, ids())
    assert plan.poll_errors == 2
    assert plan.events == ()


def test_backoff_is_jittered_between_the_previous_step_and_this_one() -> None:
    error = UpstreamError(UNAVAILABLE, "boom")
    low = plan_failure(due(poll_errors=2), error, T0, POLL, rand=lambda: 0.0).next_poll_at
    high = plan_failure(due(poll_errors=2), error, T0, POLL, rand=lambda: 1.0).next_poll_at
    assert low == T0 + timedelta(seconds=60)
    assert high == T0 + timedelta(seconds=120)


def test_per_watch_interval_overrides_the_state_interval_until_the_job_ends() -> None:
    assert next_poll_at(3, T0, T0, POLL, 5) == T0 + timedelta(seconds=5)
    assert next_poll_at(4, T0, T0, POLL, 5) == T0 + timedelta(seconds=5)
    assert next_poll_at(5, T0, T0, POLL, 5) is None
    assert next_poll_at(6, T0, T0, POLL, 5) == T0 + timedelta(seconds=300)


def test_failed_job_retried_upstream_is_noticed_back_in_the_queue() -> None:
    plan = plan_success(due(make_status(6, error="boom")), make_status(3), T0, POLL, ids())
    assert [e.type for e in plan.events] == ["imageversion.state_changed"]
    assert plan.events[0].previous is not None
    assert plan.events[0].previous.state == "Failed"
    assert plan.next_poll_at == T0 + timedelta(seconds=30)


def test_a_ticks_polls_start_evenly_spread_over_the_spread_window() -> None:
    assert start_offsets(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    assert start_offsets(3, 0.0) == [0.0, 0.0, 0.0]
    assert start_offsets(0, 1.0) == []
