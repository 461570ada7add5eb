"""What a failed send means, decided without a database or a receiver."""

from __future__ import annotations

from datetime import timedelta

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.failure_decision import (
    DisableSubscription,
    GaveUp,
    Rejected,
    RetryLater,
    decide_failure,
    receiver_hold,
)
from notifier.core.retry import RetryPolicy
from tests.conftest import T0

POLICY = RetryPolicy(schedule_seconds=(5, 60), max_attempts=3, max_age_seconds=3600)
NOW = T0 + timedelta(minutes=1)


def decide(failure: DeliveryFailed, attempts: int = 1, rand: float = 1.0) -> object:
    return decide_failure(
        failure, attempts=attempts, now=NOW, created_at=T0, policy=POLICY, rand=lambda: rand
    )


def test_a_transient_failure_is_tried_again_within_its_step_of_the_schedule() -> None:
    assert decide(DeliveryFailed("answered 500"), rand=1.0) == RetryLater(
        NOW + timedelta(seconds=5), "answered 500"
    )
    assert decide(DeliveryFailed("answered 500"), attempts=2, rand=0.0) == RetryLater(
        NOW + timedelta(seconds=5), "answered 500"
    )


def test_retry_after_is_a_floor_for_the_next_try() -> None:
    decision = decide(DeliveryFailed("answered 429", retry_after=120), rand=0.0)
    assert decision == RetryLater(NOW + timedelta(seconds=120), "answered 429")


def test_a_permanent_failure_is_rejected_at_once_whatever_the_attempts() -> None:
    assert decide(DeliveryFailed("answered 404", permanent=True)) == Rejected("answered 404")


def test_gone_disables_the_subscription_rather_than_rejecting_one_delivery() -> None:
    failure = DeliveryFailed("endpoint answered 410 Gone", gone=True)
    assert decide(failure) == DisableSubscription("endpoint answered 410 Gone")


def test_the_last_attempt_gives_up_saying_why_after_the_last_error() -> None:
    decision = decide(DeliveryFailed("answered 503"), attempts=3)
    assert decision == GaveUp(
        "answered 503 (gave up after 3 attempts)", "answered 503", "gave up after 3 attempts"
    )


def test_a_retry_that_would_come_past_the_age_limit_gives_up() -> None:
    failure = DeliveryFailed("answered 503", retry_after=7200)
    decision = decide(failure)
    assert isinstance(decision, GaveUp)
    assert decision.last_failure == "answered 503"
    assert "past max_age_seconds" in decision.why


def test_only_a_transient_failure_with_retry_after_holds_the_receiver_back() -> None:
    assert receiver_hold(DeliveryFailed("429", retry_after=30), NOW) == NOW + timedelta(seconds=30)
    assert receiver_hold(DeliveryFailed("500"), NOW) is None
    assert receiver_hold(DeliveryFailed("gone", gone=True, retry_after=30), NOW) is None
