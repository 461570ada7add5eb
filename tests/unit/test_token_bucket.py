"""The per-credential limiter: its decisions, on a clock the test moves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.clanforge.limiter import RECOVERY_QUIET_SECONDS, TokenBucket
from tests.support.clock import HandClock


def send_times(bucket: TokenBucket, clock: HandClock, seconds: float) -> list[float]:
    """When a caller that always has more to send gets through, waiting what ``reserve`` says."""
    times: list[float] = []
    end = clock.seconds() + seconds
    while clock.seconds() < end:
        wait = bucket.reserve()
        if wait == 0:
            times.append(clock.seconds())
        else:
            clock.advance(wait)
    return times


def busiest(times: list[float], window: float = 1.0) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_start_up_sends_no_more_than_the_rate_in_any_second() -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(5, 5, now=clock.seconds)
    assert [bucket.reserve() for _ in range(5)] == [0, 0, 0, 0, 0]
    assert bucket.reserve() == pytest.approx(1.0)  # the sixth would be a sixth in one second
    times = send_times(bucket, clock, 10)
    assert busiest(times) <= 5
    assert len(times) == pytest.approx(45, abs=1)


@settings(max_examples=60, deadline=None)
@given(rate=st.floats(0.5, 50), burst=st.integers(1, 20), seconds=st.floats(5, 60))
def test_a_caller_with_more_to_send_gets_the_whole_rate_and_never_more(
    rate: float, burst: int, seconds: float
) -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(rate, burst, now=clock.seconds)
    times = send_times(bucket, clock, seconds)
    window = burst / rate
    assert busiest(times, window - 1e-9) <= burst
    # All of the budget: ``burst`` at once, then ``rate`` a second.
    assert len(times) >= 0.95 * min(rate * seconds, burst + rate * (seconds - window))


def test_after_a_429_it_waits_retry_after_then_is_back_at_the_rate_by_twice_that() -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(20, 20, now=clock.seconds)
    for _ in range(10):
        assert bucket.reserve() == 0
    limited_at = clock.seconds()
    assert bucket.rate_limited(retry_after=2)
    assert bucket.rate == 5  # half of the 10 sent in the last second
    assert bucket.reserve() == pytest.approx(2)
    clock.advance(2)
    climb = send_times(bucket, clock, 2)
    assert len(climb) < 2 * 20  # climbing, not yet at the configured rate
    assert busiest(climb) <= 20
    assert clock.seconds() >= limited_at + 4
    assert bucket.rate == 20
    after = send_times(bucket, clock, 10)
    assert len(after) >= 0.95 * 20 * 10
    assert busiest(after) <= 20


def test_answers_to_the_same_overshoot_slow_down_only_once() -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(20, 20, now=clock.seconds)
    for _ in range(10):
        bucket.reserve()
    slowed = [bucket.rate_limited(retry_after=1) for _ in range(5)]
    assert slowed == [True, False, False, False, False]
    assert bucket.rate == 5
    assert bucket.rate_limited_count == 5


def test_without_retry_after_it_still_waits_before_sending_again() -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(4, 4, now=clock.seconds)
    for _ in range(4):
        bucket.reserve()
    bucket.rate_limited(retry_after=None)
    assert bucket.reserve() > 0


def test_a_429_that_repeats_while_climbing_lowers_the_ceiling_which_climbs_back_slowly() -> None:
    clock = HandClock.at_seconds(1000.0)
    bucket = TokenBucket(10, 10, now=clock.seconds)
    for _ in range(10):
        bucket.reserve()
    clock.advance(0.5)
    assert bucket.rate_limited(retry_after=1)
    clock.advance(1)
    # Half way up the climb, upstream says 429 again: 10/s is above its limit.
    sending = len(send_times(bucket, clock, 0.5)) / 0.5
    assert bucket.rate_limited(retry_after=1)
    clock.advance(10)
    assert bucket.rate == pytest.approx(sending / 2, rel=0.2)
    assert bucket.rate < 5
    lowered = bucket.rate
    clock.advance(RECOVERY_QUIET_SECONDS - 10)
    assert bucket.rate == pytest.approx(lowered)
    clock.advance(60)  # then a tenth of the configured rate a minute
    assert bucket.rate == pytest.approx(lowered + 1)
    clock.advance(600)
    assert bucket.rate == 10
    times = send_times(bucket, clock, 5)
    assert busiest(times) <= 10
    assert len(times) >= 0.95 * 10 * 5


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(0, 1)
