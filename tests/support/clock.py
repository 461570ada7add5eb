"""The one hand clock: tests move it past delays and leases instead of sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from slack_sdk.signature import Clock as SignatureClock

T0 = datetime(2026, 11, 28, 17, 0, 0, tzinfo=UTC)
"""The moment every test's story starts, unless the test says otherwise."""


class HandClock:
    """A clock set by hand, so relative times (retry delays, leases, "5 minutes ago") are exact.

    It keeps Unix seconds as a float: :attr:`now` and calling it give the moment as an aware
    datetime (for the service's clocks), :meth:`seconds` as a number (for what keeps time in
    seconds: the pacers and the rate limiter), and a float moved by a fraction of a microsecond
    moves, as it would on the float clocks that code is written for.
    """

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.slept: list[float] = []
        """What :meth:`sleep` was asked to wait, to the microsecond, in order."""

    @classmethod
    def at_seconds(cls, seconds: float) -> HandClock:
        """A clock whose :meth:`seconds` start at ``seconds``, for code that keeps time as a
        number from any origin (``time.monotonic``)."""
        clock = cls()
        clock._seconds = seconds
        return clock

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._seconds, UTC)

    @now.setter
    def now(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError(f"the hand clock keeps aware datetimes, not {moment!r}")
        self._seconds = moment.timestamp()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self._seconds += seconds
        return self.now

    def seconds(self) -> float:
        """The same moment as a number, for what keeps time in seconds (the channel pacer)."""
        return self._seconds

    async def sleep(self, seconds: float) -> None:
        """For code that takes a ``sleep``: moves the clock instead of waiting (and lets the other
        tasks run, as a real sleep would)."""
        self.slept.append(round(seconds, 6))
        self.advance(seconds)
        await asyncio.sleep(0)

    def signature_clock(self) -> SignatureClock:
        """This clock as slack-sdk's signature verifier reads one (``now()`` in Unix seconds)."""
        hand = self

        class Verifier(SignatureClock):
            def now(self) -> float:
                return hand.seconds()

        return Verifier()
