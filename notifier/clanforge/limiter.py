"""A token bucket per Clanforge credential that slows itself down when upstream says 429.

Clanforge is shared: it counts requests per credential, so every poll made with one credential
draws from one bucket. :meth:`TokenBucket.reserve` is the pure decision ("send now, or wait this
long"), driven by an injected monotonic time so its arithmetic is tested without sleeping;
:meth:`TokenBucket.acquire` is the thin async loop around it.

On a 429 the bucket does not retry hot: it stops sending until ``Retry-After`` has passed, drops
its burst to one, and halves its rate below what it had just been sending (measured over the last
second), since the configured rate evidently was too high for upstream's limit. It then climbs
back towards the configured rate slowly while no further 429 comes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

RECOVERY_QUIET_SECONDS: Final = 60.0
"""After a 429, the rate stays reduced at least this long before it starts to climb back."""
RECOVERY_STEP_PER_MINUTE: Final = 0.1
"""Once quiet, the rate climbs back by this fraction of the configured rate per minute."""
MIN_RATE_FRACTION: Final = 0.05
"""However many 429s, the rate never drops below this fraction of the configured rate."""
_WINDOW: Final = 1.0


class TokenBucket:
    """``rate`` tokens per second, up to ``burst`` saved; one token per request."""

    __slots__ = (
        "_burst",
        "_configured_burst",
        "_configured_rate",
        "_last",
        "_last_limited",
        "_now",
        "_paused_until",
        "_rate",
        "_sent",
        "_tokens",
        "rate_limited_count",
    )

    def __init__(
        self, rate: float, burst: int, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._configured_rate = rate
        self._configured_burst = burst
        self._rate = rate
        self._burst = float(burst)
        self._now = now
        start = now()
        self._tokens = float(burst)
        self._last = start
        self._paused_until = start
        self._last_limited: float | None = None
        self._sent: deque[float] = deque()
        self.rate_limited_count = 0

    @property
    def rate(self) -> float:
        """The rate in force now (requests per second), lower than configured after a 429."""
        return self._rate

    def reserve(self) -> float:
        """Take a token and return 0, or return how many seconds to wait before asking again."""
        now = self._now()
        self._recover(now)
        self._refill(now)
        if now < self._paused_until:
            return self._paused_until - now
        if self._tokens >= 1:
            self._tokens -= 1
            self._sent.append(now)
            self._forget_old(now)
            return 0.0
        return (1 - self._tokens) / self._rate

    async def acquire(self) -> None:
        """Wait until a request may be sent under this bucket."""
        while (wait := self.reserve()) > 0:  # noqa: ASYNC110 - the wait is computed, not polled
            await asyncio.sleep(wait)

    def rate_limited(self, retry_after: float | None) -> bool:
        """Upstream answered 429: pause for ``retry_after`` and slow down below what we sent.

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
        recent = max(len(self._sent), 1) / _WINDOW
        floor = self._configured_rate * MIN_RATE_FRACTION
        self._rate = max(min(self._rate, recent) / 2, floor)
        self._burst = 1.0
        self._tokens = 0.0
        pause = retry_after if retry_after is not None else 1 / self._rate
        self._paused_until = max(self._paused_until, now + pause)
        self._last_limited = now
        return True

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now

    def _recover(self, now: float) -> None:
        if self._last_limited is None or self._rate >= self._configured_rate:
            return
        quiet = now - self._last_limited
        if quiet < RECOVERY_QUIET_SECONDS:
            return
        climbing = min(now - self._last, quiet - RECOVERY_QUIET_SECONDS)
        step = self._configured_rate * RECOVERY_STEP_PER_MINUTE * climbing / 60
        self._rate = min(self._configured_rate, self._rate + step)
        if self._rate >= self._configured_rate:
            self._burst = float(self._configured_burst)
            self._last_limited = None

    def _forget_old(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - _WINDOW:
            self._sent.popleft()
