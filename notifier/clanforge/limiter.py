"""The pace of requests per Clanforge credential: the whole budget, never more, and a short
step back after a 429.

Clanforge is shared: it counts requests per credential, so every poll made with one credential
goes through one :class:`TokenBucket`. :meth:`TokenBucket.reserve` is the pure decision ("send
now, or wait this long"), driven by an injected monotonic time so its arithmetic is tested
without sleeping; :meth:`TokenBucket.acquire` is the thin async loop around it.

At most ``burst`` requests go in any ``burst / rate`` seconds, from the first request on: the
bucket starts empty of savings, so start-up never sends above the rate, and a caller with more
to send gets exactly the rate.

On a 429 the bucket sends nothing until ``Retry-After`` has passed, then resumes at half of what
it had been sending and climbs back to the configured rate by twice ``Retry-After`` after the 429:
a single 429 (another client on the credential, a blip upstream) costs seconds, not minutes. A
429 that comes again while climbing, or soon after, says the configured rate is above upstream's
limit: then the ceiling drops to half of what drew it, and climbs back only slowly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

RECOVERY_QUIET_SECONDS: Final = 60.0
"""After a repeated 429, the lowered ceiling holds at least this long before it climbs back..."""
RECOVERY_STEP_PER_MINUTE: Final = 0.1
"""...by this fraction of the configured rate per minute."""
MIN_RATE_FRACTION: Final = 0.05
"""However many 429s, the rate never drops below this fraction of the configured rate."""
_WINDOW: Final = 1.0
"""What "what it had been sending" is measured over, in seconds."""


class TokenBucket:
    """At most ``burst`` requests in any ``burst / rate`` seconds; slower a while after a 429."""

    __slots__ = (
        "_burst",
        "_ceiling",
        "_configured_burst",
        "_configured_rate",
        "_lowered_at",
        "_now",
        "_paused_until",
        "_ramp_end",
        "_ramp_from",
        "_recent",
        "_resumed_at",
        "_sent",
        "rate_limited_count",
    )

    def __init__(
        self, rate: float, burst: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._configured_rate = rate
        self._configured_burst = burst
        self._burst = burst
        self._now = now
        start = now()
        self._paused_until = start
        self._resumed_at: float | None = None
        self._ramp_from = rate
        self._ramp_end = start
        self._ceiling = rate
        self._lowered_at: float | None = None
        """When a repeated 429 last lowered the ceiling below the configured rate."""
        self._sent: deque[float] = deque(maxlen=burst)
        self._recent: deque[float] = deque()
        self.rate_limited_count = 0

    @property
    def rate(self) -> float:
        """The rate in force now (requests per second), lower than configured after a 429."""
        return self._rate_at(self._now())

    def reserve(self) -> float:
        """Take a slot and return 0, or return how many seconds to wait before asking again."""
        now = self._now()
        if now < self._paused_until:
            return self._paused_until - now
        rate = self._rate_at(now)
        burst = self._burst if rate >= self._configured_rate else 1
        if rate >= self._configured_rate and self._burst < self._configured_burst:
            self._burst = burst = self._configured_burst
        sent = self._sent
        if len(sent) >= burst:
            free_at = sent[-burst] + burst / rate
            if free_at > now:
                return free_at - now
        sent.append(now)
        self._recent.append(now)
        self._forget_old(now)
        return 0.0

    async def acquire(self) -> None:
        """Wait until a request may be sent under this bucket."""
        while (wait := self.reserve()) > 0:  # noqa: ASYNC110 - the wait is computed, not polled
            await asyncio.sleep(wait)

    def rate_limited(self, retry_after: float | None) -> bool:
        """Upstream answered 429: pause for ``retry_after``, then climb back (see the module).

        Returns whether this 429 slowed the bucket down (False for answers to the same overshoot).
        """
        now = self._now()
        self._forget_old(now)
        self.rate_limited_count += 1
        if now < self._paused_until:
            # Answers to requests sent before we slowed down: that overshoot is already paid for.
            if retry_after is not None:
                self._paused_until = max(self._paused_until, now + retry_after)
            return False
        current = self._rate_at(now)
        # Measured since the last pause ended, if that was less than a window ago.
        resumed = self._resumed_at
        span = _WINDOW if resumed is None else min(_WINDOW, max(now - resumed, _WINDOW / 10))
        recent = max(len(self._recent), 1) / span
        sending = min(current, recent)
        floor = self._configured_rate * MIN_RATE_FRACTION
        pause = retry_after if retry_after is not None else 1 / max(sending / 2, floor)
        climbing = now < self._ramp_end + (self._ramp_end - self._paused_until)
        if climbing:
            self._ceiling = max(sending / 2, floor)
            self._lowered_at = now
        self._ramp_from = min(max(sending / 2, floor), self._ceiling)
        self._paused_until = self._resumed_at = now + pause
        self._ramp_end = now + 2 * pause
        self._burst = 1
        self._sent.clear()
        return True

    def _rate_at(self, now: float) -> float:
        ceiling = self._ceiling
        if self._lowered_at is not None:
            quiet = now - self._lowered_at - RECOVERY_QUIET_SECONDS
            if quiet > 0:
                step = self._configured_rate * RECOVERY_STEP_PER_MINUTE * quiet / 60
                ceiling = min(self._configured_rate, ceiling + step)
        if now >= self._ramp_end:
            return ceiling
        start = self._paused_until
        if now <= start:
            return self._ramp_from
        return self._ramp_from + (ceiling - self._ramp_from) * (now - start) / (
            self._ramp_end - start
        )

    def _forget_old(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - _WINDOW:
            self._recent.popleft()
