"""Keeps each Slack channel at about one message per second, the rate Slack asks for.

Slack answers bursts beyond that with HTTP 429; twenty image versions changing in one poll tick
would otherwise post twenty messages at once, get most of them rejected and retry them all
together again (a 429 storm). Waiting for a turn per channel sends them one after another, in the
order they asked, and a 429 that slips through pushes the channel's next turn back for everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class ChannelPacer:
    """``await pacer.wait_turn(channel)`` before each call that writes to ``channel``."""

    def __init__(
        self,
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._next_turn: dict[str, float] = {}
        # asyncio.Lock wakes its waiters first come, first served: that keeps the order.
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait_turn(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            delay = self._next_turn.get(channel, 0.0) - self._clock()
            if delay > 0:
                await self._sleep(delay)
            self._next_turn[channel] = self._clock() + self._interval

    def back_off(self, channel: str, seconds: float) -> None:
        """Slack said "slow down" for ``channel``: nobody's next turn comes before ``seconds``."""
        later = self._clock() + max(seconds, self._interval)
        self._next_turn[channel] = max(self._next_turn.get(channel, 0.0), later)
