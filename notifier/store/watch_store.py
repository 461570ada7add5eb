"""What the poller needs of a store: claim due watches, record what their polls meant, release.

Two implementations: :class:`notifier.store.polling.SqlWatchStore` (SQLite and PostgreSQL, the
service's) and :class:`notifier.store.memory.MemoryWatchStore` (unit tests of the poller; the
store contract tests run over both). The store keeps what the plans say; it decides nothing
about a poll and builds no event (that is :mod:`notifier.core.poll_plan`'s work).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from notifier.core.events import Event
from notifier.core.lease import Lease
from notifier.core.poll_plan import ClaimedWatch, PlannedDelivery, PlannedRefresh, PollPlan
from notifier.core.schedule import Known


@dataclass(frozen=True, slots=True)
class Claim:
    """Watches leased to ``owner`` until ``lease_until``: together they tell a later write which
    of these watches are still this claim's (a lease run out may have passed to another replica)."""

    owner: str
    lease_until: datetime
    watches: Sequence[ClaimedWatch]


Ranker = Callable[[Sequence[Known], datetime], Sequence[int]]
"""Given every watch due by the given moment (in due order), as the scheduler reads it, the ids
to claim, first first: when more is due than a tick's budget polls, the budget-aware scheduler's
choice; otherwise all."""

CANDIDATE_LIMIT = 10_000
"""At most this many due watches are ranked per claim (the longest overdue, by due order)."""


@dataclass(frozen=True, slots=True)
class PollResults:
    """What one batch's polls come to: the planned ones, the unchanged ones, what to deliver."""

    plans: Sequence[PollPlan] = ()
    unchanged: Mapping[datetime | None, Sequence[int]] = field(default_factory=dict)
    """Watches whose reply was no news, by their next poll: only that schedule is written."""
    deliveries: Sequence[PlannedDelivery] = ()
    refreshes: Sequence[PlannedRefresh] = ()
    """Live-message refreshes; kept only where the live message exists."""
    held: Mapping[int, int] = field(default_factory=dict)
    """Watch id -> the silence holding it: its events are recorded with that silence."""


@dataclass(frozen=True, slots=True)
class PollWrite:
    """What one write of a batch's polls took effect on."""

    plans: list[PollPlan]
    """The plans written (those of watches whose lease was still this claim's)."""
    unchanged: int
    """Unchanged polls written: only their schedule."""


class WatchStore(Protocol):
    async def claim_due(
        self, lease: Lease, limit: int, due_by: datetime, rank: Ranker | None = None
    ) -> Claim:
        """Lease up to ``limit`` active watches due by ``due_by`` whose lease (if any) ran out
        before the new lease starts; by due time, ties in the order added.

        With ``rank``, up to :data:`CANDIDATE_LIMIT` due watches are read and only the ids it
        chooses are leased, in its order."""
        ...

    async def load_memory(self, watches: Sequence[ClaimedWatch]) -> list[ClaimedWatch]:
        """These claimed watches with their stored status and timing memory, in their order;
        a watch removed since its claim is left out."""
        ...

    async def record_polls(self, claim: Claim, results: PollResults, now: datetime) -> PollWrite:
        """Write a batch's statuses, events, deliveries and schedules all at once, and give the
        leases back; a watch no longer held by ``claim`` is left alone, with its deliveries.

        All at once is the delivery guarantee: a crash before leaves the next poll to see the
        same difference, a crash after leaves deliveries to send.
        """
        ...

    async def release(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (at shutdown, so another replica polls at once)."""
        ...

    async def recent_state_changes(self, limit: int) -> list[Event]:
        """The latest ``limit`` ``imageversion.state_changed`` events, oldest first: what the
        scheduler learns how long jobs wait and run from when the process starts."""
        ...
