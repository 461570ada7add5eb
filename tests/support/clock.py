"""The one hand clock: tests move it past delays and leases instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 28, 17, 0, 0, tzinfo=UTC)
"""The moment every test's story starts, unless the test says otherwise."""


class HandClock:
    """A clock set by hand, so relative times (retry delays, leases, "5 minutes ago") are exact."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def seconds(self) -> float:
        """The same moment as a number, for what keeps time in seconds (the channel pacer)."""
        return self.now.timestamp()
