"""The dispatcher: sends what the outbox holds, records each outcome, schedules retries.

It claims only as many deliveries as it has free send slots, so every lease it takes covers one
send that starts at once (a claimed delivery never waits out its lease in a queue). The poller
wakes it right after committing, so a transition reaches Slack within milliseconds of being seen;
the scheduler also wakes it periodically for due retries; a finished send wakes it to claim the
next. Outcomes are written by one task, several per transaction (group commit), which keeps
SQLite's single write lock from becoming the bottleneck under load.

Shutdown (:meth:`stop`): stop claiming, let sends under way finish within the grace period,
cancel the rest (they stay pending and are sent again, with the same webhook-id), record what
finished, release this replica's leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.notify.outcome import DeliveryFailed
from notifier.notify.retry import GiveUp, RetryPolicy
from notifier.notify.sink import Sink
from notifier.notify.subscription import Subscription
from notifier.store.outbox import (
    ClaimedDelivery,
    Delivered,
    Failed,
    Outcome,
    claim_due_deliveries,
    extend_leases,
    record_outcomes,
    release_leases,
)
from notifier.store.subscriptions import disable_subscription

log = logging.getLogger(__name__)

SubscriptionLoader = Callable[[], Awaitable[Sequence[Subscription]]]


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
    ) -> None:
        self._engine = engine
        self._sinks = sinks
        self._load_subscriptions = load_subscriptions
        self._owner = owner
        self._clock = clock
        self._policy = policy
        self._max_concurrency = max_concurrency
        self._lease = lease
        self._shutdown_grace = shutdown_grace
        self._wake = asyncio.Event()
        self._stopping = False
        # Sends under way: their task and the delivery each one holds the lease of.
        self._in_flight: dict[asyncio.Task[None], int] = {}
        # Receivers that answered "slow down" with a Retry-After: nothing goes to them before.
        self._slow_down_until: dict[int, datetime] = {}
        self._pending_outcomes: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._outcomes_ready = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then winds down (see the module docstring)."""
        self._stopping = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

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
        """Extend the leases of sends under way every third of a lease, so that a send slower
        than one lease (a slow receiver, several Slack calls) is not taken over and sent twice."""
        period = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            ids = list(self._in_flight.values())
            try:
                await extend_leases(self._engine, self._owner, ids, self._clock() + self._lease)
            except Exception:
                log.exception("could not extend %d delivery lease(s)", len(ids))

    async def _wind_down(self, writer: asyncio.Task[None], heartbeat: asyncio.Task[None]) -> None:
        if self._in_flight:
            log.info(
                "waiting up to %g s for %d send(s) under way",
                self._shutdown_grace,
                len(self._in_flight),
            )
            _, late = await asyncio.wait(set(self._in_flight), timeout=self._shutdown_grace)
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
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        # Anything the writer had not taken yet (it was cancelled between batches).
        await self._flush_outcomes()
        await release_leases(self._engine, self._owner)

    async def dispatch_once(self) -> int:
        """Claim what the free send slots allow, send it and record the outcomes; returns how
        many were claimed (0: nothing is due). The service's ``dispatch_due`` loops on it."""
        writer = asyncio.create_task(self._write_outcomes(), name="delivery-outcomes")
        try:
            claimed = await self._fill_slots()
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._flush_outcomes()
        return claimed

    async def dispatch_until_idle(self) -> None:
        """Send everything due now and wait for it, without the loop of :meth:`run` (a one-off
        drain: what tests use to step through retries with their own clock)."""
        writer = asyncio.create_task(self._write_outcomes(), name="delivery-outcomes")
        try:
            while True:
                await self._fill_slots()
                if not self._in_flight:
                    break
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._flush_outcomes()

    async def _fill_slots(self) -> int:
        """Claim up to the free send slots and start sending; returns how many were claimed."""
        free = self._max_concurrency - len(self._in_flight)
        if free <= 0:
            return 0  # a finishing send wakes us
        now = self._clock()
        self._slow_down_until = {s: t for s, t in self._slow_down_until.items() if t > now}
        claimed = await claim_due_deliveries(
            self._engine, self._owner, now, self._lease, free, self._slow_down_until.keys()
        )
        if not claimed:
            return 0
        subscriptions = {s.id: s for s in await self._load_subscriptions()}
        for delivery in claimed:
            task = asyncio.create_task(
                self._send(delivery, subscriptions.get(delivery.subscription_id)),
                name=f"delivery-{delivery.id}",
            )
            self._in_flight[task] = delivery.id
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())
        # A slot is free, and the next delivery of the same key may be due now.
        self._wake.set()

    async def _send(self, delivery: ClaimedDelivery, subscription: Subscription | None) -> None:
        outcome = await self._attempt(delivery, subscription)
        await self._record(outcome)

    async def _attempt(
        self, delivery: ClaimedDelivery, subscription: Subscription | None
    ) -> Outcome:
        attempts = delivery.attempts + 1
        if subscription is None:
            log.warning(
                "delivery %d is dead: its subscription was removed or disabled meanwhile",
                delivery.id,
            )
            return Failed(delivery.id, "subscription is gone or inactive", None)
        sink = self._sinks.get(subscription.kind)
        try:
            if sink is None:
                raise DeliveryFailed(
                    f"no sink for {subscription.kind!r} is configured", permanent=True
                )
            try:
                await sink.deliver(delivery.event, subscription)
            except DeliveryFailed:
                raise
            except Exception as exc:
                # A bug of ours must not lose the delivery: log it and retry like a fault.
                log.exception("sending delivery %d crashed", delivery.id)
                raise DeliveryFailed(f"internal error: {exc!r}") from exc
        except DeliveryFailed as failure:
            return await self._failed(delivery, subscription, attempts, failure)
        return Delivered(delivery.id, self._clock())

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

    async def _record(self, outcome: Outcome) -> None:
        """Queue ``outcome`` for the writer and wait until it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_outcomes.append((outcome, done))
        self._outcomes_ready.set()
        await done

    async def _write_outcomes(self) -> None:
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            await self._flush_outcomes()

    async def _flush_outcomes(self) -> None:
        batch, self._pending_outcomes = self._pending_outcomes, []
        if not batch:
            return
        try:
            await record_outcomes(self._engine, self._owner, [outcome for outcome, _ in batch])
        except Exception as exc:
            # Not recorded: the leases run out and the deliveries go out again (same id).
            log.exception("could not record %d delivery outcome(s)", len(batch))
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)
