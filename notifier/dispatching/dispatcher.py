"""The dispatcher: sends what the outbox holds, and has each outcome recorded.

Shaped like arq's worker: deliveries are claimed in batches (one claim transaction per batch, not
per free slot: claims of a few deliveries each cost more than the sends) into a queue; a semaphore
of ``max_concurrency`` slots bounds the sends, and each queued delivery gets a task of its own
once it has a slot. The next claim is made while half a claim's worth is still queued, so that
claiming and sending overlap. Each (subscription, watch) is claimed only at its head, so a batch
holds at most one delivery per key and per-key order is kept whatever order the tasks run in.

The heartbeat extends the leases of everything held, waiting or under way, so a waiting delivery
never waits out its lease. The poller wakes the dispatcher right after committing, so a
transition reaches Slack within milliseconds of being seen; the scheduler also wakes it
periodically for due retries; recorded outcomes wake it to claim what they unblocked. What a
failed send means is :func:`notifier.core.failure_decision.decide_failure`'s decision; the
:class:`OutcomeWriter` records outcomes many per transaction.

A receiver that asks to slow down (Retry-After) holds back its waiting deliveries too: they are
given back unattempted, with their lease released, and claimed again once it allows.

Shutdown (:meth:`Dispatcher.stop`): stop claiming, drop the deliveries still queued,
let sends under way finish within the grace period, cancel the rest (they stay pending and are
sent again, with the same webhook-id), record what finished, release this replica's leases (the
dropped ones with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.digest import DailyDigest
from notifier.core.events import DIGEST_DAILY, Event
from notifier.core.failure_decision import (
    DisableSubscription,
    GaveUp,
    Rejected,
    RetryLater,
    decide_failure,
    receiver_hold,
)
from notifier.core.lease import Lease
from notifier.core.live_refresh import refresh_event, resume_event
from notifier.core.retry import RetryPolicy
from notifier.core.secret_scrub import scrubber_of
from notifier.core.subscriptions import Subscription, secrets_of
from notifier.dispatching.outcomes import OutcomeWriter
from notifier.notify.sink import Sink
from notifier.store.outbox_store import (
    ClaimedDelivery,
    Delivered,
    Failed,
    Outbox,
    Outcome,
    Released,
)

log = logging.getLogger(__name__)

SubscriptionLoader = Callable[[], Awaitable[Sequence[Subscription]]]

# Deliveries held at once per send slot: enough that a claim's fixed cost (a transaction, two
# statements, loading subscriptions) is shared by many sends, few enough that a slow receiver
# does not sit on many leases that another replica could serve.
CLAIM_BATCH_PER_SLOT = 32
# The next claim is made while a claim's worth divided by this (half of it) still waits for a
# slot: claiming only when less was left let the slots run dry while the claim was under way.
CLAIM_AHEAD_DIVISOR = 2
# Outcomes written per transaction while more sends wait: a quarter of a claim, so that
# claiming goes on while outcomes wait to be written.
OUTCOME_BATCH_PER_SLOT = 8
# How stale the dispatcher's copy of the subscriptions may get: loading them is a database round
# trip that every claim would otherwise pay. A subscription changed meanwhile (a new URL, a new
# secret) is used within this long; one the copy has never seen is loaded at once.
SUBSCRIPTIONS_MAX_AGE_SECONDS = 1.0
# The longest an outcome waits for its batch: slow or paced sends (Slack's one message per second
# per channel) must not leave a send that went out unrecorded for long (a crash would repeat it).
OUTCOME_WAIT_SECONDS = 0.1


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
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
        subscriptions_max_age: float = SUBSCRIPTIONS_MAX_AGE_SECONDS,
        secrets: Sequence[str] = (),
    ) -> None:
        self._outbox = outbox
        # The configuration's secrets: no failure text keeps a piece of one, nor of the
        # subscription's own (a receiver or Slack may echo what we sent).
        self._secrets = tuple(secrets)
        self._sinks = sinks
        self._load_subscriptions = load_subscriptions
        self._subscriptions: Mapping[int, Subscription] = {}
        self._subscriptions_loaded: float | None = None  # the event loop's clock
        self._subscriptions_max_age = subscriptions_max_age
        self._owner = owner
        self._clock = clock
        self._policy = policy
        self._slots = asyncio.Semaphore(max_concurrency)
        # Most deliveries waiting or sending at once.
        self._claim_batch = max(claim_batch or CLAIM_BATCH_PER_SLOT * max_concurrency, 1)
        self._low_water = max(self._claim_batch // CLAIM_AHEAD_DIVISOR, max_concurrency)
        self._lease = lease
        self._shutdown_grace = shutdown_grace
        self._wake = asyncio.Event()
        # The last claim got less than it asked for: nothing more is due until something
        # changes (an outcome recorded, a wake-up from outside), so neither running low nor a
        # finishing send claims anything.
        self._drained = False
        # Counts those changes: one during a claim may have made due what the claim missed.
        self._changes = 0
        self._stopping = False
        # Claimed and waiting for a slot, in claim order (a key appears at most once).
        self._queue: deque[tuple[ClaimedDelivery, Subscription | None]] = deque()
        # Takes a slot for the next delivery of the queue, then starts its task (arq's
        # start_jobs); runs while the queue holds any.
        self._starter: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # Every delivery whose lease we hold: claimed, until its outcome is recorded.
        self._held: set[int] = set()
        # Receivers that answered "slow down" with a Retry-After: nothing goes to them before.
        self._slow_down_until: dict[int, datetime] = {}
        self._outcomes = OutcomeWriter(
            outbox,
            owner,
            batch=max(min(OUTCOME_BATCH_PER_SLOT * max_concurrency, self._claim_batch // 4), 1),
            wait=outcome_wait,
            on_recorded=self._recorded,
        )

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
        """Deliveries this dispatcher holds the lease of: waiting, being sent, or being recorded."""
        return len(self._held)

    async def dispatch_due(self) -> int:
        """Send everything due now, claiming more as the slots run low, and wait until every
        outcome is recorded; returns how many deliveries were claimed (0: nothing was due).

        What :meth:`run` does when woken, callable on its own: tests step through retries with
        it on their own clock, and the benchmarks drain the outbox with it. The heartbeat runs
        meanwhile, so that a pass slower than a lease does not hand out what it holds twice.
        """
        writer = self._outcomes.start()
        heartbeat = asyncio.create_task(self._keep_leases(), name="delivery-leases")
        self._drained = False  # a new pass: the last one's short claim says nothing of now
        try:
            claimed = await self._claim()
            # Done when nothing is held and nothing happened since the last claim: outcomes
            # recorded during a claim may have made the next delivery of a key due.
            while self._held or self._wake.is_set():
                await self._wake.wait()
                self._wake.clear()
                claimed += await self._claim()
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._outcomes.close(writer)
        return claimed

    async def run(self) -> None:
        """Dispatch whenever woken, until :meth:`stop`; a failing pass is logged, not fatal."""
        writer = self._outcomes.start()
        heartbeat = asyncio.create_task(self._keep_leases(), name="delivery-leases")
        try:
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                try:
                    await self._claim()
                except Exception:
                    log.exception("dispatch pass failed; trying again at the next wake-up")
        finally:
            await self._wind_down(writer, heartbeat)

    async def _keep_leases(self) -> None:
        """Extend the leases of everything held every third of a lease, so that a send slower
        than one lease (a slow receiver, several Slack calls), or one waiting for a slot behind
        slow sends, is not taken over and sent twice."""
        period = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._held)
            try:
                await self._outbox.extend_leases(self._owner, ids, self._clock() + self._lease)
            except Exception:
                log.exception("could not extend %d delivery lease(s)", len(ids))

    async def _wind_down(self, writer: asyncio.Task[None], heartbeat: asyncio.Task[None]) -> None:
        # Deliveries still waiting for a slot are not started; release_leases gives them back.
        self._queue.clear()
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self._sending:
            log.info(
                "waiting up to %g s for %d send(s) under way",
                self._shutdown_grace,
                len(self._sending),
            )
            _, late = await asyncio.wait(set(self._sending), timeout=self._shutdown_grace)
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
        await self._outcomes.close(writer)
        await self._outbox.release_leases(self._owner)
        self._held.clear()

    async def _claim(self) -> int:
        """Claim more when few deliveries wait for a slot, a task each; returns how many."""
        if self._stopping or self._drained or len(self._queue) >= self._low_water:
            return 0  # nothing due, or enough waiting; a recorded outcome or a send wakes us
        # Sent deliveries waiting for their outcome's write do not count: they sit on no
        # receiver, and counting them stalled the claims behind every group commit.
        room = self._claim_batch - len(self._queue) - len(self._sending)
        if room <= 0:
            return 0  # a finishing send wakes us
        now = self._clock()
        self._slow_down_until = {s: t for s, t in self._slow_down_until.items() if t > now}
        changes = self._changes
        claimed = await self._outbox.claim_due(
            Lease(self._owner, now, self._lease), room, self._slow_down_until.keys()
        )
        self._drained = len(claimed) < room and changes == self._changes
        if not claimed:
            return 0
        subscriptions = await self._subscriptions_for(claimed)
        self._held.update(delivery.id for delivery in claimed)
        if self._stopping:
            return len(claimed)  # stopped meanwhile: the wind-down releases them
        self._queue.extend((d, subscriptions.get(d.subscription_id)) for d in claimed)
        if self._starter is None or self._starter.done():
            self._starter = asyncio.create_task(self._start_sends(), name="delivery-starter")
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

    async def _start_sends(self) -> None:
        """A slot first, then a task of its own for the next queued delivery, until the queue
        is empty: as arq's worker starts its jobs."""
        while self._queue and not self._stopping:
            await self._slots.acquire()
            if self._stopping or not self._queue:
                self._slots.release()
                return
            delivery, subscription = self._queue.popleft()
            if len(self._queue) < self._low_water and not self._drained:
                self._wake.set()  # running low: claim the next batch while these send
            task = asyncio.create_task(self._send(delivery, subscription), name="delivery")
            self._sending.add(task)
            task.add_done_callback(self._finished)

    async def _send(self, delivery: ClaimedDelivery, subscription: Subscription | None) -> None:
        """One delivery's task, in a slot: send, hand the outcome to the writer."""
        try:
            if subscription is not None and self._slowed_down(subscription.id):
                outcome: Outcome = Released(delivery.id)
            else:
                outcome = await self._attempt(delivery, subscription)
        except Exception:
            # Not ours to keep any more: its lease runs out and it goes out again (same id).
            log.exception("delivery %d failed outside its send", delivery.id)
            self._held.discard(delivery.id)
        else:
            self._outcomes.add(outcome, last=not self._queue)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._slots.release()
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        self._wake.set()

    def _recorded(self, outcomes: Sequence[Outcome]) -> None:
        """Recorded or not, they are no longer ours to keep alive; the next delivery of each
        key may be due now."""
        self._held.difference_update(outcome.delivery_id for outcome in outcomes)
        self.wake()

    def _slowed_down(self, subscription_id: int) -> bool:
        until = self._slow_down_until.get(subscription_id)
        return until is not None and until > self._clock()

    async def _attempt(
        self, delivery: ClaimedDelivery, subscription: Subscription | None
    ) -> Outcome:
        if subscription is None:
            log.warning(
                "delivery %d is dead: its subscription was removed or disabled meanwhile",
                delivery.id,
            )
            return Failed(delivery.id, "subscription is gone or inactive", None)
        subject = delivery.subject
        if isinstance(subject, DailyDigest):
            what = f"delivery {delivery.id} ({DIGEST_DAILY} {subject.day})"
        else:
            if not isinstance(subject, Event):
                event = refresh_event(delivery.id, delivery.created_at, subject)
            elif delivery.kind == "resume":
                event = resume_event(delivery.id, subject)
            else:
                event = subject
            what = f"delivery {delivery.id} ({event.type}, image version {event.image_version_id})"
        sink = self._sinks.get(subscription.kind)
        try:
            if sink is None:
                raise DeliveryFailed(
                    f"no sink for {subscription.kind!r} is configured", permanent=True
                )
            try:
                if isinstance(subject, DailyDigest):
                    await sink.deliver_digest(subject, subscription)
                else:
                    await sink.deliver(event, subscription)
            except DeliveryFailed:
                raise
            except Exception as exc:
                # A bug of ours must not lose the delivery: log it and retry like a fault.
                log.exception("sending delivery %d crashed", delivery.id)
                raise DeliveryFailed(f"internal error: {exc!r}") from exc
        except DeliveryFailed as failure:
            return await self._failed(delivery, what, subscription, failure)
        return Delivered(delivery.id, self._clock())

    async def _failed(
        self,
        delivery: ClaimedDelivery,
        what: str,
        subscription: Subscription,
        failure: DeliveryFailed,
    ) -> Outcome:
        """Carry out what the core decides a failed send means, and tell the operator."""
        failure.reason = scrubber_of((*self._secrets, *secrets_of(subscription))).scrub(
            failure.reason
        )
        now = self._clock()
        hold = receiver_hold(failure, now)
        if hold is not None:
            self._slow_down_until[subscription.id] = max(
                hold, self._slow_down_until.get(subscription.id, hold)
            )
        attempts = delivery.attempts + 1
        decision = decide_failure(
            failure, attempts=attempts, now=now, created_at=delivery.created_at, policy=self._policy
        )
        match decision:
            case DisableSubscription(error=error):
                await self._outbox.disable_subscription(subscription.id, error)
                log.error(
                    "subscription %r disabled: %s; %s is dead. Fix the receiver or the URL, then "
                    "run `notifier subscription enable %s` and "
                    "`notifier deliveries retry --all-dead`",
                    subscription.name,
                    error,
                    what,
                    subscription.name,
                )
                return Failed(delivery.id, error, None)
            case Rejected(error=error):
                log.error(
                    "subscription %r: %s is dead, not retried: %s. Once fixed, "
                    "`notifier deliveries retry %d` sends it again",
                    subscription.name,
                    what,
                    error,
                    delivery.id,
                )
                return Failed(delivery.id, error, None)
            case GaveUp(error=error, last_failure=last_failure, why=why):
                log.error(
                    "subscription %r: %s is dead, %s; last error: %s",
                    subscription.name,
                    what,
                    why,
                    last_failure,
                )
                return Failed(delivery.id, error, None)
            case RetryLater(at=at, error=error):
                log.warning(
                    "subscription %r: %s failed (attempt %d), next try at %s: %s",
                    subscription.name,
                    what,
                    attempts,
                    at.strftime("%Y-%m-%d %H:%M:%S"),
                    error,
                )
                return Failed(delivery.id, error, at)
