"""The dispatcher: sends what the outbox holds, records each outcome, schedules retries.

It claims deliveries in batches (one claim transaction per batch, not per free slot: claims of a
few deliveries each cost more than the sends) into a local queue that a fixed pool of
``max_concurrency`` workers drains; a claim is made when the queue runs low, so sending and
claiming overlap. The heartbeat
extends the leases of everything held, queued or under way, so a queued delivery never waits out
its lease. Each (subscription, watch) is claimed only at its head, so a batch holds at most one
delivery per key and per-key order is kept whatever the queue does. The poller wakes it right
after committing, so a transition reaches Slack within milliseconds of being seen; the scheduler
also wakes it periodically for due retries; committed outcomes wake it to claim what they
unblocked. Outcomes are written by one task, many per transaction (group commit), which keeps
SQLite's single write lock from becoming the bottleneck under load.

Per-delivery work that need not happen between sends does not: each sink prepares a claim's
sends in one loop as the claim comes in (:meth:`Sink.prepare`: the body, what is signed), and
hears of the finished sends a batch at a time as their outcomes are written (:meth:`Sink.sent`:
the metrics). Between two HTTP requests the same Python runs two to three times slower than in
a loop of its own, the CPU's caches being full of the HTTP client's.

A receiver that asks to slow down (Retry-After) holds back its queued deliveries too: they are
given back unattempted, with their lease released, and claimed again once it allows.

Shutdown (:meth:`stop`): stop claiming and starting sends, let sends under way finish within the
grace period, cancel the rest (they stay pending and are sent again, with the same webhook-id),
record what finished, release this replica's leases (the queued ones with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.retry import GiveUp, RetryPolicy
from notifier.core.subscriptions import Subscription
from notifier.notify.sink import Send, Sent, Sink, refused
from notifier.store.outbox import (
    ClaimedDelivery,
    Delivered,
    Failed,
    Outcome,
    Released,
    claim_due_deliveries,
    extend_leases,
    record_outcomes,
    release_leases,
)
from notifier.store.recent_events import RecentEvents
from notifier.store.subscriptions import disable_subscription

log = logging.getLogger(__name__)

SubscriptionLoader = Callable[[], Awaitable[Sequence[Subscription]]]
# A claimed delivery waiting for a worker: its subscription (None: gone), the sink for it (None:
# none is configured) and its send, prepared by that sink when the claim came in.
Queued = tuple[ClaimedDelivery, Subscription | None, Sink | None, Send]

# Deliveries held at once per send slot: enough that a claim's fixed cost (a transaction, two
# statements, loading subscriptions) is shared by many sends, few enough that a slow receiver
# does not sit on many leases that another replica could serve.
CLAIM_BATCH_PER_SLOT = 32
# The next claim is made while a claim's worth divided by this (half of it) is still queued. A
# claim takes a few milliseconds of wall time, more while sends are under way, several times
# what the sends of a slot's worth take: claiming only when that little was left let the queue
# run dry while the claim was under way, and left the send slots empty for a fifth of a drain.
CLAIM_AHEAD_DIVISOR = 2
# Outcomes written per transaction while more sends are queued: a transaction's fixed cost (the
# pool, BEGIN, COMMIT: several round trips to the driver's thread) was most of what recording an
# outcome cost when each commit took the handful that finished meanwhile. A quarter of a claim,
# so that claiming goes on while outcomes wait to be written.
OUTCOME_BATCH_PER_SLOT = 8
# How stale the dispatcher's copy of the subscriptions may get. Loading them is a database round
# trip of several driver hops (about 1 ms of CPU, 2 ms of wall time), which every claim used to
# pay: a tenth of a webhook delivery's cost. A subscription changed meanwhile (a new URL, a new
# secret) is used within this long; one the copy has never seen is loaded at once.
SUBSCRIPTIONS_MAX_AGE_SECONDS = 1.0
# The longest an outcome waits for its batch: slow or paced sends (Slack's one message per second
# per channel) must not leave a send that went out unrecorded for long (a crash would repeat it).
OUTCOME_WAIT_SECONDS = 0.1


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Mapping[str, Sink],
        load_subscriptions: SubscriptionLoader,
        *,
        owner: str,
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        max_concurrency: int,
        lease: timedelta,
        shutdown_grace: float = 10.0,
        claim_batch: int | None = None,
        outcome_wait: float = OUTCOME_WAIT_SECONDS,
        recent_events: RecentEvents | None = None,
        subscriptions_max_age: float = SUBSCRIPTIONS_MAX_AGE_SECONDS,
    ) -> None:
        self._engine = engine
        # Events the poller just committed: their deliveries' claims need not read them back.
        self._recent_events = recent_events
        self._sinks = sinks
        self._load_subscriptions = load_subscriptions
        self._subscriptions: Mapping[int, Subscription] = {}
        self._subscriptions_loaded: float | None = None  # the event loop's clock
        self._subscriptions_max_age = subscriptions_max_age
        self._owner = owner
        self._clock = clock
        self._policy = policy
        self._max_concurrency = max_concurrency
        # Most deliveries queued or under way at once.
        self._claim_batch = max(claim_batch or CLAIM_BATCH_PER_SLOT * max_concurrency, 1)
        self._low_water = max(self._claim_batch // CLAIM_AHEAD_DIVISOR, max_concurrency)
        self._outcome_batch = max(
            min(OUTCOME_BATCH_PER_SLOT * max_concurrency, self._claim_batch // 4), 1
        )
        self._lease = lease
        self._shutdown_grace = shutdown_grace
        self._wake = asyncio.Event()
        # The last claim got less than it asked for: nothing more is due until something
        # changes (an outcome committed, a wake-up from outside), so neither running low nor a
        # finishing send claims anything.
        self._drained = False
        # Counts those changes: one during a claim may have made due what the claim missed.
        self._changes = 0
        self._stopping = False
        # Claimed and not yet sent, in claim order (a key appears at most once).
        self._queue: deque[Queued] = deque()
        # Every delivery whose lease we hold: claimed, until its outcome is committed.
        self._held: set[int] = set()
        self._workers: set[asyncio.Task[None]] = set()
        # Receivers that answered "slow down" with a Retry-After: nothing goes to them before.
        self._slow_down_until: dict[int, datetime] = {}
        self._pending_outcomes: list[Outcome] = []
        # The finished sends of those outcomes, for their sinks to hear of with them (Sink.sent).
        self._pending_sent: list[tuple[Sink, Sent]] = []
        self._outcomes_ready = asyncio.Event()
        self._writer_closing = False
        self._outcome_wait = outcome_wait
        # Counts the batches taken by the writer: a wait armed for an earlier batch is void.
        self._outcome_batches = 0

    def wake(self) -> None:
        """Something may have become due (an event committed, a retry's time, an outcome
        recorded): the next pass claims again."""
        self._drained = False
        self._changes += 1
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then winds down (see the module docstring)."""
        self._stopping = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Deliveries this dispatcher holds the lease of: queued, being sent, or being recorded."""
        return len(self._held)

    async def run(self) -> None:
        """Dispatch whenever woken, until :meth:`stop`; a failing pass is logged, not fatal."""
        writer = asyncio.create_task(self._write_outcomes(), name="delivery-outcomes")
        heartbeat = asyncio.create_task(self._keep_leases(), name="delivery-leases")
        try:
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await self._fill_slots()
                except Exception:
                    log.exception("dispatch pass failed; trying again at the next wake-up")
        finally:
            await self._wind_down(writer, heartbeat)

    async def _keep_leases(self) -> None:
        """Extend the leases of everything held every third of a lease, so that a send slower
        than one lease (a slow receiver, several Slack calls), or one waiting in the queue behind
        slow sends, is not taken over and sent twice."""
        period = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._held)
            try:
                await extend_leases(self._engine, self._owner, ids, self._clock() + self._lease)
            except Exception:
                log.exception("could not extend %d delivery lease(s)", len(ids))

    async def _wind_down(self, writer: asyncio.Task[None], heartbeat: asyncio.Task[None]) -> None:
        # Queued deliveries are not started; release_leases below gives them back.
        self._queue.clear()
        if self._workers:
            log.info(
                "waiting up to %g s for %d send(s) under way",
                self._shutdown_grace,
                len(self._workers),
            )
            _, late = await asyncio.wait(set(self._workers), timeout=self._shutdown_grace)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%d send(s) did not finish within %g s; they stay pending and go out again",
                    len(late),
                    self._shutdown_grace,
                )
                await asyncio.wait(late)
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        await self._close_writer(writer)
        await release_leases(self._engine, self._owner)
        self._held.clear()

    async def dispatch_once(self) -> int:
        """Send everything due now and record the outcomes, claiming more as the queue runs low;
        returns how many were claimed (0: nothing is due). The service's ``dispatch_due`` loops
        on it."""
        writer = asyncio.create_task(self._write_outcomes(), name="delivery-outcomes")
        self._drained = False  # a new pass: the last one's short claim says nothing of now
        try:
            claimed = await self._fill_slots()
            # Done when nothing is held and nothing happened since the last claim: outcomes
            # committed during a claim may have made the next delivery of a key due.
            while self._held or self._wake.is_set():
                await self._wake.wait()
                self._wake.clear()
                claimed += await self._fill_slots()
        finally:
            await self._close_writer(writer)
        return claimed

    async def dispatch_until_idle(self) -> None:
        """Send everything due now and wait for it, without the loop of :meth:`run` (a one-off
        drain: what tests use to step through retries with their own clock)."""
        await self.dispatch_once()

    async def _fill_slots(self) -> int:
        """Claim more when the queue runs low and start workers; returns how many were claimed."""
        if self._stopping or self._drained or len(self._queue) >= self._low_water:
            return 0  # nothing due, or enough waiting; a committed outcome or a send wakes us
        # Sent deliveries waiting for their outcome's commit do not count: they sit on no
        # receiver, and counting them stalled the claims behind every group commit.
        room = self._claim_batch - len(self._queue) - len(self._workers)
        if room <= 0:
            return 0  # a finishing send wakes us
        now = self._clock()
        self._slow_down_until = {s: t for s, t in self._slow_down_until.items() if t > now}
        changes = self._changes
        claimed = await claim_due_deliveries(
            self._engine,
            self._owner,
            now,
            self._lease,
            room,
            self._slow_down_until.keys(),
            self._recent_events,
        )
        self._drained = len(claimed) < room and changes == self._changes
        if claimed:
            self._enqueue(claimed, await self._subscriptions_for(claimed))
        if not self._stopping:  # stopped meanwhile: the wind-down releases what is queued
            for _ in range(min(self._max_concurrency - len(self._workers), len(self._queue))):
                worker = asyncio.create_task(self._work(), name="delivery-worker")
                self._workers.add(worker)
                worker.add_done_callback(self._finished)
        return len(claimed)

    async def _subscriptions_for(
        self, claimed: Sequence[ClaimedDelivery]
    ) -> Mapping[int, Subscription]:
        """The active subscriptions, from the copy unless it is too old or lacks one claimed."""
        now = asyncio.get_running_loop().time()
        loaded = self._subscriptions_loaded
        known = self._subscriptions
        if (
            loaded is None
            or now - loaded >= self._subscriptions_max_age
            or any(d.subscription_id not in known for d in claimed)
        ):
            known = {s.id: s for s in await self._load_subscriptions()}
            self._subscriptions, self._subscriptions_loaded = known, now
        return known

    def _enqueue(
        self, claimed: Sequence[ClaimedDelivery], subscriptions: Mapping[int, Subscription]
    ) -> None:
        """Queue a claim, each send prepared by its sink here, in one loop (see Sink.prepare)."""
        for delivery in claimed:
            self._held.add(delivery.id)
            subscription = subscriptions.get(delivery.subscription_id)
            sink = None if subscription is None else self._sinks.get(subscription.kind)
            if subscription is None:
                send: Send = _gone
            elif sink is None:
                send = refused(
                    DeliveryFailed(
                        f"no sink for {subscription.kind!r} is configured", permanent=True
                    )
                )
            else:
                try:
                    send = sink.prepare(delivery.event, subscription)
                except Exception as exc:
                    # A bug of ours must not lose the delivery: log it and retry like a fault.
                    log.exception("preparing delivery %d crashed", delivery.id)
                    send = refused(DeliveryFailed(f"internal error: {exc!r}"))
            self._queue.append((delivery, subscription, sink, send))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery worker failed", exc_info=task.exception())
        self._wake.set()

    async def _work(self) -> None:
        """Send queued deliveries one after another until the queue is empty or we stop."""
        while self._queue and not self._stopping:
            delivery, subscription, sink, send = self._queue.popleft()
            if len(self._queue) < self._low_water and not self._drained:
                self._wake.set()  # running low: claim the next batch while we send
            try:
                if subscription is not None and self._slowed_down(subscription.id):
                    outcome: Outcome = Released(delivery.id)
                else:
                    outcome = await self._attempt(delivery, subscription, sink, send)
            except Exception:
                # Not ours to keep any more: its lease runs out and it goes out again (same id).
                log.exception("delivery %d failed outside its send", delivery.id)
                self._held.discard(delivery.id)
            else:
                if not self._pending_outcomes:
                    asyncio.get_running_loop().call_later(
                        self._outcome_wait, self._outcome_waited, self._outcome_batches
                    )
                self._pending_outcomes.append(outcome)
            # Group commit: while sends are queued, outcomes wait for a batch's worth (or the
            # wait above); the last of the queue writes what is left. A send under way meanwhile
            # keeps its lease alive (the heartbeat covers everything held).
            if not self._queue or len(self._pending_outcomes) >= self._outcome_batch:
                self._outcomes_ready.set()
        self._outcomes_ready.set()

    def _outcome_waited(self, batch: int) -> None:
        if batch == self._outcome_batches:
            self._outcomes_ready.set()

    def _slowed_down(self, subscription_id: int) -> bool:
        until = self._slow_down_until.get(subscription_id)
        return until is not None and until > self._clock()

    async def _attempt(
        self,
        delivery: ClaimedDelivery,
        subscription: Subscription | None,
        sink: Sink | None,
        send: Send,
    ) -> Outcome:
        if subscription is None:
            log.warning(
                "delivery %d is dead: its subscription was removed or disabled meanwhile",
                delivery.id,
            )
            return Failed(delivery.id, "subscription is gone or inactive", None)
        try:
            try:
                await send()
            except DeliveryFailed:
                raise
            except Exception as exc:
                # A bug of ours must not lose the delivery: log it and retry like a fault.
                log.exception("sending delivery %d crashed", delivery.id)
                raise DeliveryFailed(f"internal error: {exc!r}") from exc
        except DeliveryFailed as failure:
            if sink is not None:
                self._pending_sent.append((sink, Sent(delivery.event, None, failure.permanent)))
            return await self._failed(delivery, subscription, delivery.attempts + 1, failure)
        at = self._clock()
        if sink is not None:
            self._pending_sent.append((sink, Sent(delivery.event, at)))
        return Delivered(delivery.id, at)

    async def _failed(
        self,
        delivery: ClaimedDelivery,
        subscription: Subscription,
        attempts: int,
        failure: DeliveryFailed,
    ) -> Outcome:
        if failure.retry_after is not None and not failure.permanent:
            # A rate limit is the receiver's (Slack's per channel, a webhook endpoint's), not
            # this image version's: hold back every delivery to it, not only this one.
            until = self._clock() + timedelta(seconds=failure.retry_after)
            self._slow_down_until[subscription.id] = max(
                until, self._slow_down_until.get(subscription.id, until)
            )
        decision = self._policy.decide(
            attempts,
            self._clock(),
            delivery.created_at,
            permanent=failure.permanent,
            retry_after=failure.retry_after,
        )
        what = (
            f"delivery {delivery.id} ({delivery.event.type}, image version "
            f"{delivery.event.image_version_id})"
        )
        if failure.gone:
            await disable_subscription(self._engine, subscription.id, failure.reason)
            log.error(
                "subscription %r disabled: %s; %s is dead. Fix the receiver or the URL, then run "
                "`notifier subscription enable %s` and `notifier deliveries retry --all-dead`",
                subscription.name,
                failure.reason,
                what,
                subscription.name,
            )
            return Failed(delivery.id, failure.reason, None)
        if isinstance(decision, GiveUp):
            if failure.permanent:
                log.error(
                    "subscription %r: %s is dead, not retried: %s. Once fixed, "
                    "`notifier deliveries retry %d` sends it again",
                    subscription.name,
                    what,
                    failure.reason,
                    delivery.id,
                )
                return Failed(delivery.id, failure.reason, None)
            log.error(
                "subscription %r: %s is dead, %s; last error: %s",
                subscription.name,
                what,
                decision.why,
                failure.reason,
            )
            return Failed(delivery.id, f"{failure.reason} ({decision.why})", None)
        log.warning(
            "subscription %r: %s failed (attempt %d), next try at %s: %s",
            subscription.name,
            what,
            attempts,
            decision.at.strftime("%Y-%m-%d %H:%M:%S"),
            failure.reason,
        )
        return Failed(delivery.id, failure.reason, decision.at)

    async def _write_outcomes(self) -> None:
        while not self._writer_closing:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            await self._flush_outcomes()

    async def _close_writer(self, writer: asyncio.Task[None]) -> None:
        """Let the writer finish the transaction it is in, then record what is left.

        Not a cancel: sends no longer wait for their outcome to commit, so a writer cancelled
        mid-transaction would drop outcomes of sends that went out (they would go out again).
        """
        self._writer_closing = True
        self._outcomes_ready.set()
        try:
            await writer
        finally:
            self._writer_closing = False
            await self._flush_outcomes()

    async def _flush_outcomes(self) -> None:
        batch, self._pending_outcomes = self._pending_outcomes, []
        self._report_sent()
        if not batch:
            return
        self._outcome_batches += 1
        try:
            await record_outcomes(self._engine, self._owner, batch)
        except Exception:
            # Not recorded: the leases run out and the deliveries go out again (same id).
            log.exception("could not record %d delivery outcome(s)", len(batch))
        finally:
            # Recorded or not, they are no longer ours to keep alive; the next delivery of each
            # key may be due now.
            self._held.difference_update(outcome.delivery_id for outcome in batch)
            self.wake()

    def _report_sent(self) -> None:
        """Tell each sink of its finished sends, before their outcomes are written: they went
        out, whether or not the write succeeds."""
        pending, self._pending_sent = self._pending_sent, []
        by_sink: dict[Sink, list[Sent]] = {}
        for sink, result in pending:
            by_sink.setdefault(sink, []).append(result)
        for sink, results in by_sink.items():
            try:
                sink.sent(results)
            except Exception:
                log.exception("a sink failed to take note of %d send(s)", len(results))


async def _gone() -> None:
    """The send of a delivery whose subscription is gone: never made (see _attempt)."""
