"""One Clanforge budget for every replica: a credential's requests take turns from a shared ledger.

Clanforge counts requests per credential, so ``requests_per_second`` is the account's limit
whatever the number of replicas polling with it. Each request waits for a turn taken from the
credential's :class:`~notifier.core.pacing.PaceLedger` (in the database with PostgreSQL), in
batches: the requests waiting together, at most half a second's worth, take their turns in one
round trip. A turn not used within half an interval of its moment (past the burst's tolerance)
is dropped rather than used late, so no second of sends ever holds more than the rate plus a
turn per replica at a window's edge. A 429 pushes the credential's next turn past its
``Retry-After`` for every replica.

The process's own :class:`~notifier.clanforge.limiter.TokenBucket` still runs first: after a 429
it slows this replica down and ramps it back up; the shared turns keep the replicas together
within the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from notifier.core.pacing import PaceLedger, turns_ending

log = logging.getLogger(__name__)

BATCH_SECONDS: Final = 0.5
"""At most this long of turns is taken in one round trip (and so held by one replica)."""

SHARE_SECONDS: Final = 3.0
"""How far back :meth:`SharedTurns.share` looks: a few ticks, so a replica that goes quiet or
stops hands its part of the budget to the others within seconds."""


def credential_key(access_key: str) -> str:
    """The ledger key of a credential: the same in every replica that has the same key pair,
    whatever name its configuration gives it; a digest, so the key itself is never stored."""
    return "clanforge:" + hashlib.sha256(access_key.encode()).hexdigest()[:32]


class SharedTurns:
    """``await turns.wait()`` before each request of one credential."""

    def __init__(
        self,
        ledger: PaceLedger,
        key: str,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._ledger = ledger
        self._key = key
        self._interval = 1 / rate
        self._tolerance = (burst - 1) * self._interval
        self._batch = max(1, int(rate * BATCH_SECONDS))
        self._clock = clock
        self._sleep = sleep
        self._turns: deque[float] = deque()
        # FIFO, so the requests go in the order they asked.
        self._lock = asyncio.Lock()
        self._waiting = 0
        self.round_trips = 0
        """Takes from the ledger so far (each a database round trip with PostgreSQL)."""
        self._unreachable = False
        # (moment, turns this replica took, turns others took just before them) per take.
        self._takes: deque[tuple[float, int, float]] = deque()
        self._last_end: float | None = None

    def share(self) -> float:
        """This replica's part of the credential's turns lately: 1 when no other replica took
        any, 1/3 when three took turns alike.

        Others' turns show as the gap between the end of this replica's last take and the first
        turn of its next one (the ledger had moved on by theirs); an idle ledger shows none. The
        poller sizes its claim by it: each replica claiming a whole tick of the budget, N busy
        replicas claimed N ticks' worth, and a watch one of them picked waited up to N ticks
        behind the others' picks for its turn.
        """
        takes, horizon = self._takes, self._clock() - SHARE_SECONDS
        while takes and takes[0][0] < horizon:
            takes.popleft()
        mine = sum(take[1] for take in takes)
        theirs = sum(take[2] for take in takes)
        return 1.0 if mine + theirs <= 0 else mine / (mine + theirs)

    async def wait(self) -> None:
        self._waiting += 1
        try:
            async with self._lock:
                turn = await self._next_turn()
                delay = turn - self._clock()
                if delay > 0:
                    await self._sleep(delay)
        finally:
            self._waiting -= 1

    async def _next_turn(self) -> float:
        turns, now = self._turns, self._clock()
        late = now - self._tolerance - self._interval / 2
        while turns and turns[0] < late:
            turns.popleft()
        if not turns:
            count = min(self._batch, self._waiting)
            try:
                end = await self._ledger.take(
                    self._key, count, self._interval, self._tolerance, now
                )
            except Exception as exc:
                # The database is out of reach (the claim and the write will say so too): this
                # process's own token bucket, already waited for, paces the request alone.
                if not self._unreachable:
                    log.warning(
                        "the shared Clanforge budget cannot be read (%s); "
                        "pacing this replica alone until it can",
                        type(exc).__name__,
                    )
                self._unreachable = True
                return now
            if self._unreachable:
                log.info("the shared Clanforge budget is back")
                self._unreachable = False
            self.round_trips += 1
            ours = turns_ending(end, count, self._interval)
            self._noted(now, count, ours[0])
            self._last_end = end
            turns.extend(ours)
        return turns.popleft()

    def _noted(self, now: float, count: int, first: float) -> None:
        last = self._last_end
        start = now - self._tolerance if last is None else max(last, now - self._tolerance)
        self._takes.append((now, count, max(0.0, (first - start) / self._interval)))

    async def push(self, seconds: float) -> None:
        """Upstream said 429: no replica's turn starts within ``seconds``, this one's included."""
        self._turns.clear()
        with contextlib.suppress(Exception):  # out of reach: see _next_turn
            await self._ledger.push(self._key, self._clock() + seconds)
