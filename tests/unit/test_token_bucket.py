"""The per-credential token bucket: its decisions, on a clock the test moves."""

from __future__ import annotations

import pytest

from notifier.clanforge.limiter import RECOVERY_QUIET_SECONDS, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sends_within(bucket: TokenBucket, clock: Clock, seconds: float, step: float = 0.01) -> int:
    """How many requests the bucket lets through when asked every ``step`` for ``seconds``."""
    sent = 0
    end = clock.now + seconds
    while clock.now < end:
        if bucket.reserve() == 0:
            sent += 1
        clock.now += step
    return sent


def test_burst_goes_at_once_then_the_rate_applies() -> None:
    clock = Clock()
    bucket = TokenBucket(5, 5, now=clock)
    assert [bucket.reserve() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.2)
    assert sends_within(bucket, clock, 10) == pytest.approx(50, abs=1)


def test_429_pauses_for_retry_after_and_halves_below_what_was_sent() -> None:
    clock = Clock()
    bucket = TokenBucket(20, 20, now=clock)
    for _ in range(10):
        assert bucket.reserve() == 0
    bucket.rate_limited(retry_after=2)
    assert bucket.rate == 5  # half of the 10 sent in the last second
    assert bucket.reserve() == pytest.approx(2)
    clock.now += 2
    # No burst after a 429: the next ten seconds carry the reduced rate and no more.
    assert sends_within(bucket, clock, 10) <= 51


def test_answers_to_the_same_overshoot_slow_down_only_once() -> None:
    clock = Clock()
    bucket = TokenBucket(20, 20, now=clock)
    for _ in range(10):
        bucket.reserve()
    slowed = [bucket.rate_limited(retry_after=1) for _ in range(5)]
    assert slowed == [True, False, False, False, False]
    assert bucket.rate == 5
    assert bucket.rate_limited_count == 5


def test_without_retry_after_it_still_waits_before_sending_again() -> None:
    clock = Clock()
    bucket = TokenBucket(4, 4, now=clock)
    for _ in range(4):
        bucket.reserve()
    bucket.rate_limited(retry_after=None)
    assert bucket.reserve() > 0


def test_rate_climbs_back_to_the_configured_one_after_a_quiet_spell() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 10, now=clock)
    for _ in range(10):
        bucket.reserve()
    bucket.rate_limited(retry_after=1)
    assert bucket.rate == 5
    clock.now += RECOVERY_QUIET_SECONDS + 1
    bucket.reserve()
    assert 5 < bucket.rate < 5.1  # the climb starts once quiet, slowly
    clock.now += 600
    bucket.reserve()
    assert bucket.rate == 10


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(0, 1)
