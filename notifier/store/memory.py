"""The watch store in a process's memory, for the poller's unit tests.

It keeps the same promises as :class:`notifier.store.polling.SqlWatchStore` (the store tests run
over both): due order, leases, a write that skips watches whose lease moved on, unchanged polls
that write only their schedule. One process, one event loop: no locking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from notifier.core.events import STATE_CHANGED, Event
from notifier.core.lease import Lease
from notifier.core.poll_plan import ClaimedWatch, PlannedDelivery, PollPlan
from notifier.core.schedule import Known, on_clock
from notifier.core.status import JobStatus
from notifier.core.timing import Tracking
from notifier.store.codec import from_attributes
from notifier.store.watch_store import (
    CANDIDATE_LIMIT,
    Claim,
    PollResults,
    PollWrite,
    Ranker,
)


@dataclass(slots=True)
class StoredWatch:
    """A watch and its stored status, as the tables hold them."""

    id: int
    account_service_id: int
    image_version_id: int
    label: str
    next_poll_at: datetime | None
    active: bool = True
    interval_seconds: float | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_polled_at: datetime | None = None
    poll_errors: int = 0
    last_poll_error: str | None = None
    poll_failing: bool = False
    paused_reason: str | None = None
    quiet_until: datetime | None = None
    status: JobStatus | None = None
    tracking: Tracking | None = None
    state_since: datetime | None = None
    observed_at: datetime | None = None
    reply_digest: bytes | None = None


@dataclass(slots=True)
class MemoryWatchStore:
    """:class:`notifier.store.watch_store.WatchStore` in dicts and lists.

    ``live_messages`` holds the (subscription, watch) pairs that have a Slack live message: a
    refresh is queued only for those, once until delivered (``refreshes``), as in the tables.
    """

    watches: dict[int, StoredWatch] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    deliveries: list[PlannedDelivery] = field(default_factory=list)
    refreshes: set[tuple[int, int]] = field(default_factory=set)
    live_messages: set[tuple[int, int]] = field(default_factory=set)

    def add(
        self,
        account_service_id: int,
        image_version_id: int,
        label: str,
        next_poll_at: datetime,
        interval_seconds: float | None = None,
    ) -> StoredWatch:
        watch = StoredWatch(
            id=len(self.watches) + 1,
            account_service_id=account_service_id,
            image_version_id=image_version_id,
            label=label,
            next_poll_at=next_poll_at,
            interval_seconds=interval_seconds,
        )
        self.watches[watch.id] = watch
        return watch

    async def claim_due(
        self, lease: Lease, limit: int, due_by: datetime, rank: Ranker | None = None
    ) -> Claim:
        now, until = lease.start, lease.until
        due = sorted(
            (
                w
                for w in self.watches.values()
                if w.active
                and w.next_poll_at is not None
                and w.next_poll_at <= due_by
                and (w.lease_until is None or w.lease_until < now)
            ),
            key=lambda w: (w.next_poll_at, w.id),
        )[: limit if rank is None else max(limit, CANDIDATE_LIMIT)]
        if rank is not None:
            by_id = {w.id: w for w in due}
            due = [by_id[i] for i in rank([_known(w) for w in due], due_by)][:limit]
        for watch in due:
            watch.lease_owner, watch.lease_until = lease.owner, until
        return Claim(lease.owner, until, [_claimed(w) for w in due])

    async def load_memory(self, watches: Sequence[ClaimedWatch]) -> list[ClaimedWatch]:
        return [_claimed(self.watches[w.watch_id]) for w in watches if w.watch_id in self.watches]

    async def record_polls(self, claim: Claim, results: PollResults, now: datetime) -> PollWrite:
        def held(watch_id: int) -> StoredWatch | None:
            watch = self.watches.get(watch_id)
            if watch is None or (watch.lease_owner, watch.lease_until) != (
                claim.owner,
                claim.lease_until,
            ):
                return None
            return watch

        unchanged = 0
        for next_at, ids in results.unchanged.items():
            for watch_id in ids:
                watch = held(watch_id)
                if watch is not None:
                    _schedule(watch, next_at, now)
                    unchanged += 1
        written: list[PollPlan] = []
        for plan in results.plans:
            watch = held(plan.watch_id)
            if watch is None:
                continue
            written.append(plan)
            if plan.status is not None:
                watch.status, watch.tracking = plan.status, plan.tracking or Tracking()
                watch.state_since, watch.reply_digest = plan.state_since, plan.reply_digest
                watch.observed_at = now
            self.events.extend(plan.events)
            _schedule(watch, plan.next_poll_at, now)
            watch.quiet_until = plan.quiet_until
            watch.poll_errors, watch.last_poll_error = plan.poll_errors, plan.last_poll_error
            watch.poll_failing, watch.paused_reason = plan.poll_failing, plan.paused_reason
        ours = {p.watch_id for p in written}
        self.deliveries.extend(d for d in results.deliveries if d.watch_id in ours)
        self.refreshes.update(
            (r.subscription_id, r.watch_id)
            for r in results.refreshes
            if r.watch_id in ours and (r.subscription_id, r.watch_id) in self.live_messages
        )
        return PollWrite(written, unchanged)

    async def release(self, owner: str) -> None:
        for watch in self.watches.values():
            if watch.lease_owner == owner:
                watch.lease_owner = watch.lease_until = None

    async def recent_state_changes(self, limit: int) -> list[Event]:
        changes = [event for event in self.events if event.type == STATE_CHANGED]
        return changes[-limit:] if limit > 0 else []


def _schedule(watch: StoredWatch, next_at: datetime | None, now: datetime) -> None:
    """A written poll's schedule, a clean bill of health, and the lease given back."""
    watch.next_poll_at, watch.last_polled_at = next_at, now
    watch.poll_errors, watch.last_poll_error = 0, None
    watch.poll_failing, watch.paused_reason = False, None
    watch.lease_owner = watch.lease_until = None


def _claimed(watch: StoredWatch) -> ClaimedWatch:
    """A stored watch as a claim hands it out, read like :class:`SqlWatchStore` reads a row."""
    status = watch.status
    return from_attributes(
        ClaimedWatch,
        watch,
        watch_id=watch.id,
        previous=status,
        state_id=None if status is None else status.state_id,
    )


def _known(watch: StoredWatch) -> Known:
    status, tracking = watch.status, watch.tracking
    return Known(
        watch.id,
        watch.account_service_id,
        None if status is None else status.state_id,
        on_clock(watch.last_polled_at),
        on_clock(watch.next_poll_at),
        state_since=on_clock(watch.state_since),
        progress=0 if status is None else status.progress,
        eta=None if status is None else on_clock(status.eta),
        eta_estimated=False if status is None else status.eta_estimated,
        rate_since=None if tracking is None else on_clock(tracking.rate_since),
        rate_base_progress=0 if tracking is None else tracking.rate_base_progress,
        run_started=None if status is None else on_clock(status.started),
        updated=None if status is None else on_clock(status.updated),
    )
