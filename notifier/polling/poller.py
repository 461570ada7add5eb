"""The poll tick: claim due watches, fetch them concurrently, write what changed, wake delivery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.clanforge.errors import RATE_LIMITED, UNAVAILABLE, UpstreamError
from notifier.clanforge.status import JobStatus
from notifier.config import DetectSettings, PollSettings
from notifier.events.ids import new_event_id
from notifier.notify.subscription import Subscription
from notifier.polling.plan import DueWatch, PollPlan, plan_deliveries, plan_failure, plan_success
from notifier.store.polling import claim_due_watches, write_poll_results

log = logging.getLogger(__name__)


class StatusSource(Protocol):
    async def fetch_status(self, account_service_id: int, image_version_id: int) -> JobStatus: ...


@dataclass(frozen=True, slots=True)
class TickSummary:
    polled: int
    failed: int
    events: int
    deliveries: int


def start_offsets(count: int, spread_seconds: float) -> list[float]:
    """When each of a tick's ``count`` polls starts, in seconds from the tick: evenly spread over
    ``spread_seconds``, so upstream sees a steady trickle instead of a burst at every tick."""
    if count <= 0:
        return []
    step = spread_seconds / count
    return [i * step for i in range(count)]


class Poller:
    def __init__(
        self,
        engine: AsyncEngine,
        source: StatusSource,
        load_subscriptions: Callable[[], Awaitable[Sequence[Subscription]]],
        *,
        poll: PollSettings,
        detect: DetectSettings | None = None,
        max_concurrency: int,
        claim_limit: int,
        lease: timedelta,
        owner: str,
        clock: Callable[[], datetime],
        on_committed: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._source = source
        self._load_subscriptions = load_subscriptions
        self._poll = poll
        self._detect = detect if detect is not None else DetectSettings()
        # One tick's polls start spread over this long instead of all at its start.
        self._spread_seconds = poll.spread * min(
            poll.interval_seconds, poll.running_interval_seconds
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        self._claim_limit = claim_limit
        self._lease = lease
        self._owner = owner
        self._clock = clock
        self._on_committed = on_committed

    async def tick(self) -> TickSummary:
        token, due = await claim_due_watches(
            self._engine, self._owner, self._clock(), self._lease, self._claim_limit
        )
        if not due:
            return TickSummary(0, 0, 0, 0)
        offsets = start_offsets(len(due), self._spread_seconds)
        plans = await asyncio.gather(
            *(self._poll_one(watch, offset) for watch, offset in zip(due, offsets, strict=True))
        )
        subscriptions = await self._load_subscriptions()
        deliveries = plan_deliveries(plans, subscriptions)
        written = await write_poll_results(
            self._engine, self._owner, token, plans, deliveries, self._clock()
        )
        events = sum(len(p.events) for p in written)
        for plan in written:
            if plan.paused_reason is not None:
                log.warning("watch %d paused: %s", plan.watch_id, plan.paused_reason)
        if deliveries:
            self._on_committed()
        failed = sum(1 for p in written if p.poll_errors)
        if events:
            log.info(
                "polled %d watch(es): %d event(s), %d delivery(ies)",
                len(written),
                events,
                len(deliveries),
            )
        return TickSummary(len(written), failed, events, len(deliveries))

    async def _poll_one(self, watch: DueWatch, start_after: float = 0.0) -> PollPlan:
        if start_after > 0:
            await asyncio.sleep(start_after)
        async with self._slots:
            try:
                status = await self._source.fetch_status(
                    watch.account_service_id, watch.image_version_id
                )
            except UpstreamError as error:
                # 429s are logged once per slow-down by the rate limiter, not once per watch.
                if watch.poll_errors == 0 and error.reason != RATE_LIMITED:
                    log.warning("%s", error.message)
                return plan_failure(watch, error, self._clock(), self._poll, new_event_id)
            except Exception as exc:
                # A bug of ours in one poll must not sink the tick's other watches.
                log.exception("polling image version %d crashed", watch.image_version_id)
                crash = UpstreamError(UNAVAILABLE, f"internal error while polling: {exc!r}")
                return plan_failure(watch, crash, self._clock(), self._poll, new_event_id)
        return plan_success(watch, status, self._clock(), self._poll, new_event_id, self._detect)
