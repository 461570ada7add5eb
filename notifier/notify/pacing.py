"""Keeps each Slack channel at about one message per second, the rate Slack asks for.

Slack answers bursts beyond that with HTTP 429; twenty image versions changing in one poll tick
would otherwise post twenty messages at once, get most of them rejected and retry them all
together again (a 429 storm). Waiting for a turn per channel sends them one after another, in the
order they asked, and a 429 that slips through pushes the channel's next turn back for everyone.

Slack counts per channel whatever the number of replicas posting, so the turns come from a
:class:`~notifier.core.pacing.PaceLedger`: in the database with several replicas (PostgreSQL),
every replica's next turn for a channel is then the same value, and a ``Retry-After`` pushes it
for all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from notifier.core.pacing import MemoryPaceLedger, PaceLedger

log = logging.getLogger(__name__)


class ChannelPacer:
    """``await pacer.wait_turn(channel)`` before each call that writes to ``channel``."""

    def __init__(
        self,
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ledger: PaceLedger | None = None,
    ) -> None:
        """``ledger``: where the turns are shared with other replicas (then ``clock`` must be
        the wall clock, the same in every replica); by default this process's alone."""
        self._interval = interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._ledger = ledger if ledger is not None else MemoryPaceLedger()
        # asyncio.Lock wakes its waiters first come, first served: that keeps the order.
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait_turn(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            try:
                end = await self._ledger.take(_key(channel), 1, self._interval, 0.0, self._clock())
            except Exception as exc:
                # The database is out of reach: the outcome's write will fail as well, and the
                # delivery is tried again; sending now risks one 429 at worst.
                log.warning("the shared Slack pace cannot be read (%s)", type(exc).__name__)
                return
            delay = end - self._interval - self._clock()
            if delay > 0:
                await self._sleep(delay)

    async def back_off(self, channel: str, seconds: float) -> None:
        """Slack said "slow down" for ``channel``: nobody's next turn comes before ``seconds``."""
        try:
            await self._ledger.push(_key(channel), self._clock() + max(seconds, self._interval))
        except Exception as exc:
            log.warning("the shared Slack pace cannot be written (%s)", type(exc).__name__)


_KEY_LENGTH: Final = 200
"""The ``pace`` table's key column."""


def _key(channel: str) -> str:
    """``slack:<channel>``, or a digest of a name too long for the key column (channels come
    from the API and /imagewatch: a silly one must not stop the pacing)."""
    key = "slack:" + channel
    if len(key) <= _KEY_LENGTH:
        return key
    return "slack:sha256:" + hashlib.sha256(channel.encode()).hexdigest()
