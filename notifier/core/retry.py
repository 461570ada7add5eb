"""The one retry policy for deliveries: pure, so that its schedule is tested without waiting.

The delays grow exponentially (the schedule), each drawn with full jitter between the previous
step and this one, so that a thousand deliveries failing together against one receiver do not
come back together; the last step is the cap. ``Retry-After`` from the receiver is a floor. A
delivery is dead after ``max_attempts`` tries or once it is older than ``max_age_seconds``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Standard Webhooks' recommendation: the first try at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 14 h, 20 h and 24 h: about three days before a delivery is given up.
DEFAULT_SCHEDULE_SECONDS: tuple[float, ...] = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)
DEFAULT_MAX_ATTEMPTS = len(DEFAULT_SCHEDULE_SECONDS) + 1
# Longer than the whole default schedule (about 3.1 days at most), so attempts decide by default.
DEFAULT_MAX_AGE_SECONDS = 4 * 86400.0


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime


@dataclass(frozen=True, slots=True)
class GiveUp:
    why: str
    """Why no further attempt will be made, in words for ``deliveries list`` and the log."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule_seconds: tuple[float, ...] = DEFAULT_SCHEDULE_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS

    def delay_bounds(self, attempts: int) -> tuple[float, float]:
        """The jitter window in seconds after ``attempts`` failed tries (``attempts`` >= 1).

        Full jitter between the previous step and this one: never sooner than the step before,
        never later than the schedule says. Past the end of the schedule the last step repeats
        (the cap), jittered over its upper half.
        """
        steps = self.schedule_seconds
        index = attempts - 1
        if index >= len(steps):
            cap = steps[-1]
            return cap / 2, cap
        upper = steps[index]
        lower = 0.0 if index == 0 else min(steps[index - 1], upper)
        return lower, upper

    def decide(
        self,
        attempts: int,
        now: datetime,
        created_at: datetime,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> Retry | GiveUp:
        """What to do after ``attempts`` failed tries (this one included) of a delivery.

        ``created_at`` is when the delivery was queued: its age is measured from there.
        """
        if attempts >= self.max_attempts:
            return GiveUp(f"gave up after {attempts} attempts")
        lower, upper = self.delay_bounds(attempts)
        delay = lower + (upper - lower) * rand()
        if retry_after is not None:
            delay = max(delay, retry_after)
        at = now + timedelta(seconds=delay)
        age = (at - created_at).total_seconds()
        if age > self.max_age_seconds:
            return GiveUp(
                f"gave up after {attempts} attempts: the next one would come "
                f"{_duration(age)} after the event, past max_age_seconds"
            )
        return Retry(at)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
