"""The one delivery retry policy: a pure function of attempts, clock, age and the receiver."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifier.core.retry import (
    DEFAULT_SCHEDULE_SECONDS,
    GiveUp,
    Retry,
    RetryPolicy,
)
from tests.conftest import T0

POLICY = RetryPolicy()


def delay(decision: Retry | GiveUp) -> float:
    assert isinstance(decision, Retry), decision
    return (decision.at - T0).total_seconds()


def test_schedule_follows_standard_webhooks_at_the_top_of_each_jitter_window() -> None:
    delays = [
        delay(POLICY.decide(n, T0, T0, rand=lambda: 1.0))
        for n in range(1, len(DEFAULT_SCHEDULE_SECONDS) + 1)
    ]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def test_full_jitter_never_comes_back_sooner_than_the_previous_step() -> None:
    delays = [
        delay(POLICY.decide(n, T0, T0, rand=lambda: 0.0))
        for n in range(1, len(DEFAULT_SCHEDULE_SECONDS) + 1)
    ]
    assert delays == [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000]


def test_jitter_draws_inside_the_window() -> None:
    assert delay(POLICY.decide(2, T0, T0, rand=lambda: 0.5)) == pytest.approx(152.5)


def test_the_whole_default_schedule_is_about_three_days() -> None:
    total = sum(
        delay(POLICY.decide(n, T0, T0, rand=lambda: 1.0))
        for n in range(1, len(DEFAULT_SCHEDULE_SECONDS) + 1)
    )
    assert 2.9 * 86400 < total < 3.3 * 86400


def test_retry_after_is_a_floor_never_a_shortcut() -> None:
    assert delay(POLICY.decide(1, T0, T0, retry_after=30, rand=lambda: 0.5)) == 30
    assert delay(POLICY.decide(2, T0, T0, retry_after=1, rand=lambda: 1.0)) == 300


def test_gives_up_after_max_attempts() -> None:
    decision = POLICY.decide(len(DEFAULT_SCHEDULE_SECONDS) + 1, T0, T0)
    assert decision == GiveUp("gave up after 10 attempts")


def test_gives_up_when_the_next_attempt_would_be_past_max_age() -> None:
    policy = RetryPolicy(schedule_seconds=(10, 60), max_attempts=100, max_age_seconds=3600)
    created = T0 - timedelta(seconds=3590)
    decision = policy.decide(2, T0, created, rand=lambda: 1.0)
    assert isinstance(decision, GiveUp)
    assert "past max_age_seconds" in decision.why
    # A receiver's Retry-After that reaches past the age limit ends it too.
    assert isinstance(policy.decide(1, T0, T0, retry_after=7200), GiveUp)


def test_past_the_schedule_the_last_step_is_the_cap() -> None:
    policy = RetryPolicy(schedule_seconds=(1, 2, 4), max_attempts=20, max_age_seconds=1e9)
    assert [delay(policy.decide(n, T0, T0, rand=lambda: 1.0)) for n in range(1, 7)] == [
        1,
        2,
        4,
        4,
        4,
        4,
    ]
    assert delay(policy.decide(6, T0, T0, rand=lambda: 0.0)) == 2
