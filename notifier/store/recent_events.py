"""Events this process has just committed, kept for the claim of their deliveries.

The poller wakes the dispatcher as soon as a batch commits, and the dispatcher's claim would then
read back, and decode from their JSON columns, the very events the poller still holds in memory:
about 14 us a delivery, the largest piece of our own work in a send. An event never changes once
written, so the one held here is the row. Only the most recent are kept, oldest out first; a
claim reads whatever is not here (another replica's events, a retry hours later) as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Final

from notifier.core.events import Event

DEFAULT_CAPACITY: Final = 2048
"""Two poll batches' worth: the dispatcher claims a batch's deliveries while the next is polled.
A bound on memory (a few MB), not on correctness: an event pushed out is read back when needed."""


class RecentEvents:
    __slots__ = ("_capacity", "_events")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("RecentEvents needs room for at least one event")
        self._capacity = capacity
        self._events: dict[str, Event] = {}

    def add(self, events: Iterable[Event]) -> None:
        """Keep ``events``, which must be committed: a claim trusts them as the stored rows."""
        kept = self._events
        for event in events:
            kept[event.id] = event
        excess = len(kept) - self._capacity
        if excess > 0:
            # A dict iterates in insertion order: the first keys are the oldest.
            for event_id in list(itertools.islice(kept, excess)):
                del kept[event_id]

    def get(self, event_id: str) -> Event | None:
        return self._events.get(event_id)

    def __len__(self) -> int:
        return len(self._events)
