"""The poll tick: claim due watches, fetch them concurrently, write what changed, wake delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from notifier.core.event_ids import new_event_id
from notifier.core.lease import Lease
from notifier.core.poll_plan import (
    PAUSING_REASONS,
    ClaimedWatch,
    PollPlan,
    PollPolicy,
    held_watches,
    plan_deliveries,
    plan_failure,
    plan_refreshes,
    plan_success,
)
from notifier.core.silences import Silence
from notifier.core.status import FetchedStatus
from notifier.core.subscriptions import Subscription
from notifier.core.timing import DetectPolicy
from notifier.core.upstream_errors import RATE_LIMITED, UNAVAILABLE, UpstreamError
from notifier.polling.budget import BudgetSchedule
from notifier.store.watch_store import Claim, PollResults, WatchStore

log = logging.getLogger(__name__)


class StatusSource(Protocol):
    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus: ...


@dataclass(frozen=True, slots=True)
class _Batch:
    """One batch's fetches: the claim, what each fetch got and when, and the batch's clock."""

    claim: Claim
    outcomes: Sequence[tuple[datetime, FetchedStatus | UpstreamError]]
    started: datetime


FetchObserver = Callable[[Sequence[float], Counter[str]], None]
"""Told each batch's fetches once the batch is fetched: every fetch's duration in seconds, and
how many fetches ended how ("ok", an :class:`UpstreamError` reason, or "internal_error")."""

SilenceLoader = Callable[[datetime], Awaitable[Sequence[Silence]]]
"""The silences that have not ended at the given moment."""

OK: Final = "ok"
INTERNAL_ERROR: Final = "internal_error"


def _ignore_fetches(seconds: Sequence[float], outcomes: Counter[str]) -> None:
    pass


@dataclass(frozen=True, slots=True)
class BatchTimings:
    """How long each phase of one batch took, in seconds: what tells a slow database (claim,
    write) from a slow upstream (fetch) or a slow process (plan)."""

    watches: int
    """Watches the batch claimed."""
    claim: float
    """Leasing the batch's watches (one transaction)."""
    fetch: float
    """Fetching every watch of the batch, spread and rate limit included."""
    plan: float
    """Deciding what each reply means: loading the memory of those that are news, detecting,
    choosing deliveries."""
    write: float
    """Writing statuses, events, deliveries and schedules (one transaction)."""


BatchObserver = Callable[[BatchTimings], None]
"""Told each batch's phase timings once its write has committed (or failed)."""


def _ignore_batch(timings: BatchTimings) -> None:
    pass


@dataclass(frozen=True, slots=True)
class TickSummary:
    polled: int
    failed: int
    events: int
    deliveries: int

    def __add__(self, other: TickSummary) -> TickSummary:
        return TickSummary(
            self.polled + other.polled,
            self.failed + other.failed,
            self.events + other.events,
            self.deliveries + other.deliveries,
        )


# Watches claimed, fetched and written together. It bounds the tick's memory whatever the watch
# list's size, and keeps the SQL per watch constant: a few statements per batch.
DEFAULT_BATCH_SIZE = 1000

BATCH_SECONDS: Final = 0.5
"""While the budget binds, a poll batch holds about this long of Clanforge's rate."""


def batch_size_for(requests_per_second: float, max_concurrency: int) -> int:
    """How many watches a batch claims, fetches and writes together.

    A batch is written (and its news sent) once all its fetches are back, so a change seen by
    its first fetch waits for its last: with a tick's polls in one batch, a whole tick (10 s at
    the default intervals while the budget binds). Half a second of the budget a batch, never
    fewer than the fetches that may run at once, and never more than :data:`DEFAULT_BATCH_SIZE`,
    which bounds a tick's memory however high the rate.
    """
    wanted = max(max_concurrency, math.ceil(requests_per_second * BATCH_SECONDS))
    return min(DEFAULT_BATCH_SIZE, wanted)


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
        store: WatchStore,
        source: StatusSource,
        load_subscriptions: Callable[[], Awaitable[Sequence[Subscription]]],
        *,
        poll: PollPolicy,
        detect: DetectPolicy | None = None,
        max_concurrency: int,
        claim_limit: int,
        lease: timedelta,
        owner: str,
        clock: Callable[[], datetime],
        on_committed: Callable[[], None],
        observe_fetches: FetchObserver = _ignore_fetches,
        observe_batch: BatchObserver = _ignore_batch,
        batch_size: int = DEFAULT_BATCH_SIZE,
        event_ids: Callable[[], str] = new_event_id,
        budget: BudgetSchedule | None = None,
        load_silences: SilenceLoader | None = None,
    ) -> None:
        self._store = store
        # The silences not yet ended at a moment; read once per tick, and only by a tick that
        # has news to send (a quiet tick costs no statement more).
        self._load_silences = load_silences
        self._silences: Sequence[Silence] | None = None
        self._source = source
        self._load_subscriptions = load_subscriptions
        self._poll = poll
        self._detect = detect if detect is not None else DetectPolicy()
        # A full tick's polls start spread over this long instead of all at its start.
        self._spread_seconds = poll.spread * poll.tick_seconds
        # How far ahead a tick claims (see _claim): past its own spread, so that a watch polled
        # late in the last tick is due in this one, and short of the next tick, so that
        # waiting for the last of them never makes this tick run into the next one.
        self._due_within = timedelta(seconds=poll.tick_seconds * (1 + poll.spread) / 2)
        self._concurrency = max_concurrency
        self._batch_size = batch_size
        self._claim_limit = claim_limit
        self._lease = lease
        self._owner = owner
        self._clock = clock
        self._on_committed = on_committed
        self._observe_fetches = observe_fetches
        self._observe_batch = observe_batch
        self._event_ids = event_ids
        # More due than the rate limit polls in a tick: claim what most likely changed first.
        self._budget = budget
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the tick under way without starting another poll: the fetches in flight end
        and are written, the watches still waiting for their moment are left as they are.

        A tick spends most of its time waiting: its polls are spread over the tick, and a watch
        claimed ahead waits for its due moment. At shutdown those waits would hold the process
        for up to three quarters of a tick. The watches left unpolled stay due; the service
        releases their leases on its way out, so another replica polls them at once.
        """
        self._stopping.set()

    async def tick(self) -> TickSummary:
        """Poll up to ``claim_limit`` due watches, a batch at a time: claim, fetch, write.

        Batches run one after the other: against a remote upstream a batch's database work is a
        sliver of its fetching, so overlapping them buys little (docs/performance-history.md).
        A cancelled tick loses nothing: a batch's write commits whole or not at all.
        """
        total = TickSummary(0, 0, 0, 0)
        remaining = self._claim_limit
        self._silences = None
        subscriptions: Sequence[Subscription] | None = None
        timer = time.perf_counter
        while remaining > 0 and not self._stopping.is_set():
            claiming = timer()
            claim = await self._claim(remaining)
            due = claim.watches
            if not due:
                break
            if subscriptions is None:
                # Once per tick, not per batch: subscriptions change at human speed.
                subscriptions = await self._load_subscriptions()
            remaining -= len(due)
            fetching = timer()
            batch = await self._poll_all(claim)
            planning = timer()
            planned = await self._plan(batch, subscriptions)
            writing = timer()
            try:
                total += await self._write(batch, planned)
            finally:
                done = timer()
                self._observe_batch(
                    BatchTimings(
                        len(due),
                        fetching - claiming,
                        planning - fetching,
                        writing - planning,
                        done - writing,
                    )
                )
            if len(due) < self._batch_size:
                break
        return total

    async def _claim(self, remaining: int) -> Claim:
        """Claim what falls due during this tick; :meth:`_poll_all` polls each when due.

        A poll schedules the next one an interval after it happened, a moment after its tick
        began (later still for polls spread over the tick). Claiming only what was due already
        left nearly every watch a hair short of due at the tick one interval on, so it waited
        for the tick after: polled every two intervals instead of one. Claimed ahead and polled
        at its moment, a watch is polled once per interval: not a tick late, not early (another
        replica's tick, whenever it comes, waits for that moment too).
        """
        limit = min(remaining, self._batch_size)
        now = self._clock()
        budget = self._budget
        return await self._store.claim_due(
            Lease(self._owner, now, self._lease),
            limit,
            due_by=now + self._due_within,
            rank=None if budget is None else budget.rank,
        )

    async def _poll_all(self, claim: Claim) -> _Batch:
        """Fetch every watch of a batch, at most ``max_concurrency`` requests in flight.

        A fixed pool of workers rather than a task per watch waiting on a semaphore: the tasks
        would cost memory and scheduling for nothing but waiting their turn. Each fetch says
        which reply would be no news (:meth:`ClaimedWatch.unchanged_digest`, as the last plan of
        the watch decided), so the client skips parsing it. The workers only note each fetch's
        duration and failure; the fetch observer (metrics) hears about the whole batch
        afterwards, keeping that bookkeeping out of the request path.
        """
        due = claim.watches
        started = self._clock()
        known = [watch.unchanged_digest(started) for watch in due]
        outcomes: list[tuple[datetime, FetchedStatus | UpstreamError]] = [
            (started, _NOT_POLLED)
        ] * len(due)
        seconds = [0.0] * len(due)
        failures: list[str] = []
        positions = iter(range(len(due)))
        # A batch takes its share of the tick's spread, so a full tick's polls trickle out over
        # the spread instead of bursting at its start; and no watch is polled before it is due
        # (claimed ahead, see _claim).
        offsets = [
            offset
            if watch.next_poll_at is None or watch.next_poll_at <= started
            else max(offset, (watch.next_poll_at - started).total_seconds())
            for watch, offset in zip(
                due,
                start_offsets(
                    len(due), self._spread_seconds * len(due) / max(self._claim_limit, len(due))
                ),
                strict=True,
            )
        ]
        loop = asyncio.get_running_loop()
        begun = loop.time()

        fetch = self._source.fetch_status
        clock = self._clock
        timer = time.perf_counter

        stopping = self._stopping

        async def worker() -> None:
            for position in positions:
                delay = begun + offsets[position] - loop.time()
                if delay > 0:
                    await _wait_unless_stopped(stopping, delay)
                if stopping.is_set():
                    return
                watch = due[position]
                outcome: FetchedStatus | UpstreamError
                fetching = timer()
                try:
                    outcome = await fetch(
                        watch.account_service_id, watch.image_version_id, known[position]
                    )
                except UpstreamError as error:
                    outcome = self._failed(watch, error)
                    failures.append(error.reason)
                except Exception as exc:
                    # A bug of ours in one poll must not sink the tick's other watches.
                    log.exception("polling image version %d crashed", watch.image_version_id)
                    outcome = UpstreamError(UNAVAILABLE, f"internal error while polling: {exc!r}")
                    failures.append(INTERNAL_ERROR)
                seconds[position] = timer() - fetching
                outcomes[position] = (clock(), outcome)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(due)))))
        if stopping.is_set():
            # Stopped: only the fetches that were made count.
            seconds = [
                took
                for (_, outcome), took in zip(outcomes, seconds, strict=True)
                if outcome is not _NOT_POLLED
            ]
        counts = Counter(failures)
        counts[OK] = len(seconds) - len(failures)
        self._observe_fetches(seconds, counts)
        return _Batch(claim, outcomes, started)

    @staticmethod
    def _failed(watch: ClaimedWatch, error: UpstreamError) -> UpstreamError:
        # 429s are logged once per slow-down by the rate limiter, not once per watch; a failure
        # that pauses the watch is logged once, by the "paused" line.
        if (
            watch.poll_errors == 0
            and error.reason != RATE_LIMITED
            and error.reason not in PAUSING_REASONS
        ):
            log.warning("%s", error.message)
        return error

    async def _plan(self, batch: _Batch, subscriptions: Sequence[Subscription]) -> PollResults:
        """What each fetch of the batch means: full plans, in the batch's order, the watches
        whose reply was no news, by their next poll, and what to deliver.

        The unchanged ones are settled from the claim alone; the rest load the watch's stored
        status first (one query for all of them).
        """
        unchanged: dict[datetime | None, list[int]] = {}
        news: list[ClaimedWatch] = []
        outcomes: dict[int, tuple[datetime, FetchedStatus | UpstreamError]] = {}
        for watch, (at, outcome) in zip(batch.claim.watches, batch.outcomes, strict=True):
            if outcome is _NOT_POLLED:
                # Left unpolled by a stop: not written, it stays due, and its lease is given back
                # with the rest of this replica's at shutdown.
                continue
            if isinstance(outcome, FetchedStatus) and outcome.status is None:
                # The reply the watch's last plan called no news (see _poll_all).
                next_at = watch.unchanged_next_poll(batch.started, self._poll)
                unchanged.setdefault(next_at, []).append(watch.watch_id)
            else:
                news.append(watch)
                outcomes[watch.watch_id] = (at, outcome)
        plans: list[PollPlan] = []
        for watch in await self._store.load_memory(news) if news else ():
            at, outcome = outcomes[watch.watch_id]
            if isinstance(outcome, UpstreamError):
                plans.append(plan_failure(watch, outcome, at, self._poll, self._event_ids))
            else:
                assert outcome.status is not None  # only a known digest skips the parse
                plan = plan_success(
                    watch,
                    outcome.status,
                    at,
                    self._poll,
                    self._event_ids,
                    self._detect,
                    outcome.digest,
                )
                plans.append(plan)
                if self._budget is not None:
                    self._budget.learn(watch, plan)
        held = held_watches(
            ((w, outcomes[w.watch_id][0]) for w in news),
            await self._silences_for(plans, batch.started),
        )
        deliveries = plan_deliveries(plans, subscriptions, held)
        return PollResults(
            plans,
            unchanged,
            deliveries,
            plan_refreshes(plans, subscriptions, deliveries, held),
            held,
        )

    async def _silences_for(self, plans: Sequence[PollPlan], now: datetime) -> Sequence[Silence]:
        """The tick's silences, read the first time a plan has something to send."""
        if self._load_silences is None or not any(p.events or p.shown_changed for p in plans):
            return ()
        if self._silences is None:
            self._silences = await self._load_silences(now)
        return self._silences

    async def _write(self, batch: _Batch, planned: PollResults) -> TickSummary:
        deliveries, refreshes = planned.deliveries, planned.refreshes
        result = await self._store.record_polls(batch.claim, planned, self._clock())
        written = result.plans
        events = sum(len(p.events) for p in written)
        for plan in written:
            if plan.paused_reason is not None:
                log.warning("watch %d paused: %s", plan.watch_id, plan.paused_reason)
        if deliveries or refreshes:
            self._on_committed()
        failed = sum(1 for p in written if p.poll_errors)
        if events:
            log.info(
                "polled %d watch(es): %d event(s), %d delivery(ies)",
                len(written) + result.unchanged,
                events,
                len(deliveries),
            )
        return TickSummary(len(written) + result.unchanged, failed, events, len(deliveries))


# A placeholder until a batch's fetch fills its slot; a slot still holding it after the fetch
# was left by a stop (see Poller.stop), and is not written.
_NOT_POLLED: Final = UpstreamError(UNAVAILABLE, "not polled")


async def _wait_unless_stopped(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or until ``stopping`` is set if that comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
