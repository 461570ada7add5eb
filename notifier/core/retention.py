"""How long finished history is kept: the rule, apart from the deletes that apply it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FINISHED_DELIVERY_STATUSES = ("delivered", "dead", "silenced")
"""A pending delivery is work to do, never history: it is kept whatever its age."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Events are kept ``events_days`` and finished deliveries ``deliveries_days`` (fractions of a
    day are allowed, for tests); an event with a delivery still pending is kept until it is sent
    or given up, since the send needs it."""

    events_days: float = 30
    deliveries_days: float = 14

    def events_before(self, now: datetime) -> datetime:
        return now - timedelta(days=self.events_days)

    def deliveries_before(self, now: datetime) -> datetime:
        return now - timedelta(days=self.deliveries_days)


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows removed (or, in a dry run, that would be)."""

    events: int = 0
    deliveries: int = 0
    silences: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.events + other.events,
            self.deliveries + other.deliveries,
            self.silences + other.silences,
        )
