"""The one retry policy for deliveries: pure, so that its schedule is tested without waiting."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Standard Webhooks' recommendation: after the first try, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
# 14 h, 20 h and 24 h: about three days before a delivery is given up.
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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule_seconds: Sequence[float] = DEFAULT_SCHEDULE_SECONDS
    jitter: float = 0.2
    """Each delay is spread by up to this fraction either way, so retries do not march in step."""

    def next_attempt(
        self,
        attempts: int,
        now: datetime,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When to try again after ``attempts`` failed tries (this one included); None: give up.

        ``retry_after`` from the receiver is a floor: we never come back sooner than asked.
        """
        if permanent or attempts > len(self.schedule_seconds):
            return None
        base = self.schedule_seconds[attempts - 1]
        delay = base * (1 + self.jitter * (2 * rand() - 1))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return now + timedelta(seconds=delay)
