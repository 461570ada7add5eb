"""The delivery retry schedule."""

from __future__ import annotations

from datetime import timedelta

from notifier.notify.retry import DEFAULT_SCHEDULE_SECONDS, RetryPolicy
from tests.conftest import T0

POLICY = RetryPolicy()


def test_schedule_follows_standard_webhooks_without_jitter() -> None:
    delays = [
        (POLICY.next_attempt(n, T0, rand=lambda: 0.5) - T0).total_seconds()  # type: ignore[operator]
        for n in range(1, len(DEFAULT_SCHEDULE_SECONDS) + 1)
    ]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def test_jitter_spreads_each_delay_by_at_most_a_fifth() -> None:
    low = POLICY.next_attempt(2, T0, rand=lambda: 0.0)
    high = POLICY.next_attempt(2, T0, rand=lambda: 1.0)
    assert low == T0 + timedelta(seconds=240)
    assert high == T0 + timedelta(seconds=360)


def test_retry_after_is_a_floor() -> None:
    assert POLICY.next_attempt(1, T0, retry_after=30, rand=lambda: 0.5) == T0 + timedelta(
        seconds=30
    )
    assert POLICY.next_attempt(2, T0, retry_after=1, rand=lambda: 0.5) == T0 + timedelta(
        seconds=300
    )


def test_permanent_failure_gives_up_at_once() -> None:
    assert POLICY.next_attempt(1, T0, permanent=True) is None


def test_gives_up_after_the_last_scheduled_retry() -> None:
    assert POLICY.next_attempt(len(DEFAULT_SCHEDULE_SECONDS) + 1, T0) is None
