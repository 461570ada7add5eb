"""The poll plan under a silence, purely: which watches are held at the moment of their poll,
their deliveries marked with the silence, their progress refreshes not planned."""

from __future__ import annotations

from datetime import timedelta

from notifier.core.poll_plan import (
    PollPolicy,
    held_watches,
    plan_deliveries,
    plan_refreshes,
    plan_success,
)
from notifier.core.silences import Matchers, Silence
from notifier.core.status import FAILED, RUNNING
from tests.conftest import T0, make_status, make_subscription
from tests.support.claimed import due, ids

MUTED = Silence(5, Matchers(image_version_id=567890), T0, T0 + timedelta(hours=1))


def test_a_watch_is_held_by_the_silence_active_at_the_moment_it_was_polled() -> None:
    watch = due(make_status(RUNNING, 40))
    assert held_watches([(watch, T0 + timedelta(minutes=59))], [MUTED]) == {7: 5}
    assert held_watches([(watch, T0 + timedelta(hours=1))], [MUTED]) == {}
    assert held_watches([(watch._replace(image_version_id=1), T0)], [MUTED]) == {}


def test_held_deliveries_carry_the_silence_and_held_watches_get_no_refresh() -> None:
    policy = PollPolicy()
    failed = plan_success(due(make_status(RUNNING, 40)), make_status(FAILED, 80), T0, policy, ids())
    moved = plan_success(due(make_status(RUNNING, 40)), make_status(RUNNING, 60), T0, policy, ids())
    slack = make_subscription(1, "slack_channel")
    hook = make_subscription(2)

    deliveries = plan_deliveries([failed], [slack, hook], {7: 5})
    assert {d.silence_id for d in deliveries} == {5}
    assert len(deliveries) == 2 * len(failed.events)

    assert plan_refreshes([moved], [slack], [], {7: 5}) == []
    assert len(plan_refreshes([moved], [slack], [])) == 1
