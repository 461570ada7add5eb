"""Wires the parts together and runs them: the one place that owns every life cycle.

``async with Service(settings) as service: await service.run(stop)`` opens the database (and
brings its schema up to date), the Clanforge, Slack and webhook HTTP sessions, syncs the
configuration's watches and subscriptions, and runs the poll clock and the dispatcher until
``stop`` is set; leaving the block closes what it opened, in reverse order.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, Self

import aiohttp
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.app import build_app
from notifier.api.deps import ApiDeps
from notifier.api.server import serve
from notifier.clanforge.accounts import ClanforgeAccounts, open_clanforge_accounts
from notifier.config import Settings
from notifier.core.clock import Clock, utc_now
from notifier.core.digest import (
    CATCH_UP,
    WINDOW,
    DailyDigest,
    build_digest,
    digest_day,
    digest_id,
    last_fire,
)
from notifier.core.retention import Pruned
from notifier.core.schedule import SchedulePolicy
from notifier.core.subscriptions import Subscription, follows
from notifier.database import sync_configuration
from notifier.dispatching.dispatcher import Dispatcher
from notifier.metrics import InstrumentedSink, Metrics
from notifier.notify.guarded_http import guarded_session
from notifier.notify.pacing import ChannelPacer
from notifier.notify.presets import PRESETS
from notifier.notify.sink import Sink
from notifier.notify.slack import SlackSink
from notifier.notify.slack_webhook import SlackWebhookSink
from notifier.notify.webhook import WebhookSink
from notifier.polling.budget import PAST_CHANGES, BudgetSchedule
from notifier.polling.discovery import Discovery
from notifier.polling.poller import Poller, TickSummary, batch_size_for
from notifier.store.digests import digest_enqueued, digest_events, enqueue_digest
from notifier.store.engine import create_engine
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.migrate import upgrade
from notifier.store.outbox import SqlOutbox
from notifier.store.pacing import pace_ledger_for
from notifier.store.polling import SqlWatchStore
from notifier.store.retention import prune
from notifier.store.silences import controls_lookup, current_silences, end_silences
from notifier.store.subscriptions import (
    forget_replaced_secrets,
    load_active_subscriptions,
)
from notifier.store.watches import newest_status

log = logging.getLogger(__name__)

POLL_JOB = "poll"
_SKIPPED_PREFIX = 'Execution of job "%s" skipped: maximum number of running instances'


class TickOverruns:
    """Says once when poll ticks start overrunning their interval, and once when they stop.

    A tick that overruns is the normal state of a bound budget (more is due than the rate limit
    lets a tick poll), not a fault: APScheduler's warning per skipped tick filled logs with
    hundreds of identical lines. Skipped ticks are counted in ``notifier_poll_ticks_skipped_total``
    instead, and the log hears of the change of state only.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.poll_ticks_skipped
        self.skipped = 0
        self.binding = False

    def skipped_tick(self, event: JobSubmissionEvent) -> None:
        """APScheduler's listener: a run of ``event``'s job skipped, the last one still running."""
        if event.job_id != POLL_JOB:
            return
        self._counter.inc()
        self.skipped += 1
        if not self.binding:
            self.binding = True
            log.info(
                "poll ticks overrun their interval: more is due than the Clanforge budget polls "
                "in a tick; skipped ticks are counted in notifier_poll_ticks_skipped_total"
            )

    def tick_ended(self, skipped_before: int) -> None:
        """A tick ended; ``skipped_before`` is :attr:`skipped` when it began."""
        if self.binding and self.skipped == skipped_before:
            self.binding = False
            log.info("poll ticks keep to their interval again")


class _QuietSkips(logging.Filter):
    """Drops APScheduler's warning per skipped poll tick (:class:`TickOverruns` says it once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or not record.msg.startswith(_SKIPPED_PREFIX):
            return True
        args = record.args
        job = args[0] if isinstance(args, tuple) and args else None
        return getattr(job, "id", None) != POLL_JOB


SILENCE_SWEEP_SECONDS = 1.0
"""How often ended silences are looked for (at least; the poll tick if slower): a silence's end
reaches Slack within about this long. Its own job, so a poll tick never waits for it; `silence
expire` (CLI, API, Slack) handles the end at once anyway."""

DIGEST_JOB_PREFIX = "digest "
DIGEST_RESYNC_SECONDS = 60
"""How soon a digest time added or changed at run time gets its cron trigger."""

PRUNE_INTERVAL_SECONDS = 3600
"""Hourly: a day's history goes in 24 small runs rather than one large one."""


def _every(
    scheduler: AsyncIOScheduler,
    seconds: float,
    job: Callable[[], Awaitable[object]],
    job_id: str,
    **options: Any,
) -> None:
    """Run ``job`` every ``seconds``: one run at a time (a run still going when the next is due
    skips that one), missed runs coalesced into one, and a fixed id, so that adding it again
    replaces it rather than running it twice."""
    scheduler.add_job(
        job,
        "interval",
        seconds=seconds,
        id=job_id,
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        **options,
    )


def make_replica_id() -> str:
    """Host, pid and a random suffix: written on leases, so people can tell who holds what."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Service:
    def __init__(
        self, settings: Settings, *, clock: Clock = utc_now, replica_id: str | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.replica_id = replica_id or make_replica_id()
        self._stack = AsyncExitStack()
        self._tick_lock = asyncio.Lock()
        self._budget: BudgetSchedule | None = None
        self._engine: AsyncEngine | None = None
        self._poller: Poller | None = None
        self._dispatcher: Dispatcher | None = None
        self.metrics = Metrics()
        self.overruns = TickOverruns(self.metrics)
        self.http_url: str | None = None
        """The HTTP server's base URL once it listens; None without a ``[server]`` section."""
        self._scheduler_running = False
        self._discovery: Discovery | None = None
        self.clanforge: ClanforgeAccounts | None = None
        self.slack: AsyncWebClient | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "use the service inside `async with`"
        return self._engine

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        settings = self.settings
        engine = create_engine(settings.database.url)
        self._stack.push_async_callback(engine.dispose)
        self._engine = engine
        schema = await upgrade(engine)
        if schema.applied:
            log.info(
                "database schema upgraded from %s to %s", schema.before or "empty", schema.after
            )
        else:
            log.info("database schema up to date at %s", schema.after)
        synced = await sync_configuration(engine, settings, self.clock())
        log.info(
            "config synced: %d watches added, %d updated, %d retired",
            synced.added,
            synced.updated,
            synced.retired,
        )

        # Clanforge's and Slack's limits are the account's and the channel's, whatever the
        # number of replicas: their turns are shared through the store's ledger.
        ledger = pace_ledger_for(engine)
        accounts = await self._stack.enter_async_context(
            open_clanforge_accounts(settings.clanforge.options(), ledger)
        )
        self.clanforge = accounts
        if settings.discovery.account_service_ids:
            self._discovery = Discovery(
                engine, accounts, settings.discovery.account_service_ids, clock=self.clock
            )
        delivery_timeout = aiohttp.ClientTimeout(total=settings.delivery.timeout_seconds)
        targets = settings.network.policy()
        webhook_session = await self._stack.enter_async_context(
            guarded_session(targets, delivery_timeout)
        )
        # Every secret of the file, scrubbed from what receivers and Slack answer before it is
        # stored, logged or shown (each subscription's own secrets are added where it is known).
        secret_values = tuple(settings.secret_values())
        sinks: dict[str, Sink] = {
            "webhook": WebhookSink(
                webhook_session,
                timeout_seconds=settings.delivery.timeout_seconds,
                clock=self.clock,
                secrets=secret_values,
            )
        }
        slack_pacer = ChannelPacer(
            settings.slack.channel_interval_seconds, clock=time.time, ledger=ledger
        )
        if any(s.kind == "slack_webhook" for s in settings.subscription):
            hook_session = await self._stack.enter_async_context(
                guarded_session(targets, delivery_timeout)
            )
            sinks["slack_webhook"] = SlackWebhookSink(
                hook_session,
                timeout_seconds=settings.delivery.timeout_seconds,
                pacer=slack_pacer,
                secrets=secret_values,
            )
        if settings.slack.bot_token is not None:
            slack_session = await self._stack.enter_async_context(
                aiohttp.ClientSession(timeout=delivery_timeout)
            )
            slack = AsyncWebClient(
                token=settings.slack.bot_token.get_secret_value(),
                base_url=settings.slack.base_url,
                session=slack_session,
                timeout=int(settings.delivery.timeout_seconds),
            )
            self.slack = slack
            sinks["slack_channel"] = SlackSink(
                slack,
                DatabaseLiveMessages(engine, self.clock),
                newest_status=functools.partial(newest_status, engine),
                pacer=slack_pacer,
                # Buttons only where a click can be verified: without the signing secret
                # POST /slack/interactions refuses every one.
                controls=controls_lookup(
                    engine,
                    self.clock,
                    self._watch_page,
                    buttons=settings.slack.signing_secret is not None,
                ),
            )
        sinks = {
            name: InstrumentedSink(name, sink, self.metrics, self.clock)
            for name, sink in sinks.items()
        }

        self._dispatcher = Dispatcher(
            SqlOutbox(engine),
            sinks,
            self._subscriptions,
            owner=self.replica_id,
            clock=self.clock,
            policy=settings.delivery.retry_policy(),
            max_concurrency=settings.delivery.max_concurrency,
            # Longer than any one send can take (config checks), short enough that a dead
            # replica's claims are picked up again soon.
            lease=timedelta(seconds=settings.delivery.lease_seconds),
            shutdown_grace=settings.delivery.shutdown_grace_seconds,
            secrets=secret_values,
        )
        poll = settings.poll.policy()
        requests_per_second = sum(c.requests_per_second for c in settings.clanforge.credentials())
        # What the rate limit lets a tick poll: more due than that is ranked, not queued.
        self._budget = BudgetSchedule(
            SchedulePolicy(max_gap_seconds=poll.max_gap_seconds),
            int(requests_per_second * poll.tick_seconds),
            poll.tick_seconds,
            # Each credential's watches against its own rate: Clanforge counts per credential.
            credential_slots={
                name: int(rate * poll.tick_seconds) for name, rate in accounts.rates().items()
            },
            credential_of=accounts.credential_name,
            # With other replicas on the same credential, this one's part of its turns.
            share_of=accounts.turn_share,
        )
        watch_store = SqlWatchStore(engine)
        learnt = self._budget.learn_past(await watch_store.recent_state_changes(PAST_CHANGES))
        if learnt:
            log.info("scheduler: learnt %d past waits and runs from the events", learnt)
        self._poller = Poller(
            watch_store,
            accounts,
            self._subscriptions,
            poll=poll,
            detect=settings.detect.policy(),
            max_concurrency=settings.clanforge.max_concurrency,
            # What the rate limit lets us fetch in one interval; the rest waits for the next tick.
            claim_limit=max(
                settings.clanforge.max_concurrency,
                int(requests_per_second * poll.interval_seconds),
            ),
            lease=timedelta(seconds=poll.interval_seconds + settings.clanforge.timeout_seconds * 3),
            owner=self.replica_id,
            clock=self.clock,
            on_committed=self._dispatcher.wake,
            observe_fetches=self.metrics.record_polls,
            observe_batch=self.metrics.record_batch,
            batch_size=batch_size_for(requests_per_second, settings.clanforge.max_concurrency),
            budget=self._budget,
            load_silences=functools.partial(current_silences, engine),
        )
        if settings.server is not None:
            deps = ApiDeps(
                engine=engine,
                settings=settings,
                clock=self.clock,
                metrics=self.metrics,
                replica_id=self.replica_id,
                scheduler_running=lambda: self._scheduler_running,
                wake_dispatcher=self._dispatcher.wake,
                slack=self.slack,
            )
            self.http_url = await self._stack.enter_async_context(
                serve(build_app(deps), settings.server)
            )
        # What start-up built lives as long as the service: frozen, it is not rescanned by every
        # full collection, which keeps a large tick's GC pauses short.
        gc.freeze()
        self._stack.callback(gc.unfreeze)

    async def _subscriptions(self) -> list[Subscription]:
        secrets_by_name: dict[str, str | tuple[str, ...]] = {
            s.name: s.config_secrets for s in self.settings.subscription if s.config_secrets
        }
        templates = {
            s.name: template
            for s in self.settings.subscription
            if (template := s.body_template) is not None
        }
        return await load_active_subscriptions(
            self.engine, secrets_by_name, templates, presets=PRESETS, now=self.clock()
        )

    def _watch_page(self, watch_id: int) -> str | None:
        server = self.settings.server
        return None if server is None else server.watch_page(watch_id)

    async def end_silences(self) -> None:
        """Release what ended silences held (once across replicas) and send it at once."""
        try:
            ended = await end_silences(self.engine, self.clock())
        except Exception:
            log.exception("handling ended silences failed; the next tick tries again")
            return
        if ended.silences:
            log.info(
                "%d silence(s) ended: %d live message(s) brought up to date, "
                "%d held delivery(ies) dropped",
                ended.silences,
                ended.resumed,
                ended.silenced,
            )
        if self._dispatcher is not None and (ended.silences or ended.resumed):
            self._dispatcher.wake()

    async def tick(self) -> TickSummary | None:
        """One poll tick, and while the budget binds straight after it another for each run of
        the clock it outlasted; the lock lets shutdown wait for a tick under way.

        A tick that fills its interval ends just after the next run was due, which APScheduler
        skips; running the next one at once leaves the rate limiter alone to set the pace.
        """
        assert self._poller is not None
        async with self._tick_lock:
            total: TickSummary | None = None
            while True:
                if self.clanforge is not None:
                    self.clanforge.new_round()
                skipped = self.overruns.skipped
                budget = self._budget
                if budget is not None:
                    budget.binding = False
                try:
                    summary = await self._poller.tick()
                except Exception:
                    log.exception("poll tick failed; the next tick tries again")
                    return total
                finally:
                    self.overruns.tick_ended(skipped)
                total = summary if total is None else total + summary
                overran = self.overruns.skipped != skipped
                bound = budget is not None and budget.binding
                if not (overran and bound and self._scheduler_running):
                    return total

    async def prune(self) -> Pruned:
        """Remove history [retention] no longer keeps, a small batch at a time, and signing
        secrets whose rotation overlap has ended."""
        await forget_replaced_secrets(self.engine, self.clock())
        pruned = await prune(self.engine, self.settings.retention.policy(), self.clock())
        if pruned.events or pruned.deliveries or pruned.silences:
            log.info(
                "pruned %d events, %d finished deliveries and %d ended silences",
                pruned.events,
                pruned.deliveries,
                pruned.silences,
            )
        return pruned

    async def discover(self) -> None:
        """One round of auto-discovery; new watches are polled by the next tick."""
        if self._discovery is None:
            return
        try:
            await self._discovery.run_once()
        except Exception:
            log.exception("discovery failed; the next round tries again")

    async def send_digests(self) -> int:
        """Enqueue every daily digest due within the last :data:`CATCH_UP` and not yet in the
        outbox; returns how many this call enqueued (0 on every other replica).

        Fired by each digest time's cron trigger, and once at start-up, so a digest whose time
        passed during a restart still goes out. The outbox row's unique id makes each digest
        one send whichever replica, or how many calls, got there.
        """
        now = self.clock()
        enqueued = 0
        for subscription in await self._subscriptions():
            schedule = subscription.digest
            if schedule is None:
                continue
            fire = last_fire(schedule, now)
            if now - fire > CATCH_UP:
                continue
            try:
                digest = await self._enqueue_digest(subscription, fire, now)
            except Exception:
                log.exception("digest of subscription %r failed", subscription.name)
                continue
            if digest is not None:
                enqueued += 1
                log.info(
                    "digest of %s for subscription %r enqueued (%d jobs)",
                    digest.day,
                    subscription.name,
                    len(digest.items),
                )
        if enqueued and self._dispatcher is not None:
            self._dispatcher.wake()
        return enqueued

    async def _enqueue_digest(
        self, subscription: Subscription, fire: datetime, now: datetime
    ) -> DailyDigest | None:
        """The digest of ``subscription`` due at ``fire`` when this call put it in the outbox;
        None when it was there already or the day had nothing for it."""
        schedule = subscription.digest
        assert schedule is not None, "only subscriptions with a digest have one to send"
        day = digest_day(schedule, fire)
        if await digest_enqueued(self.engine, digest_id(subscription.id, day)):
            return None
        found = await digest_events(self.engine, subscription, fire - WINDOW, fire)
        digest = build_digest(
            subscription.id,
            day,
            fire,
            [e for e in found.in_window if follows(subscription, e)],
            [e for e in found.before if follows(subscription, e)],
        )
        if digest is None or not await enqueue_digest(self.engine, digest, now):
            return None
        return digest

    async def schedule_digests(self, scheduler: AsyncIOScheduler) -> None:
        """One cron trigger per digest time the subscriptions name, and none for times no
        longer named: subscriptions added or changed at run time get theirs within a minute."""
        wanted = {
            f"{DIGEST_JOB_PREFIX}{s.digest.text}": s.digest
            for s in await self._subscriptions()
            if s.digest is not None
        }
        for job in scheduler.get_jobs():
            if job.id.startswith(DIGEST_JOB_PREFIX) and job.id not in wanted:
                job.remove()
        for job_id, schedule in wanted.items():
            if scheduler.get_job(job_id) is not None:
                continue
            scheduler.add_job(
                self.send_digests,
                CronTrigger(hour=schedule.hour, minute=schedule.minute, timezone=schedule.tz),
                id=job_id,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(CATCH_UP.total_seconds()),
            )

    async def dispatch_due(self) -> int:
        """Send every delivery due now (:meth:`Dispatcher.dispatch_due`); returns how many were
        claimed. The benchmarks drive delivery through this one entry point."""
        assert self._dispatcher is not None, "use the service inside `async with`"
        return await self._dispatcher.dispatch_due()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and dispatch until ``stop`` is set, then wind down within the grace period."""
        assert self._dispatcher is not None
        dispatcher = self._dispatcher
        poll = self.settings.poll
        # The tick interval is the fastest any watch can be due; each watch's own next_poll_at
        # (in the database) says when it actually is.
        interval = poll.tick_seconds
        scheduler = AsyncIOScheduler(timezone="UTC")
        _every(
            scheduler,
            interval,
            self.tick,
            POLL_JOB,
            misfire_grace_time=max(1, int(interval / 2)),
            next_run_time=self.clock(),
        )

        async def wake_dispatcher() -> None:
            # A coroutine on purpose: APScheduler runs plain functions in a worker thread, and
            # an asyncio.Event set from there may not wake the loop (not thread-safe).
            dispatcher.wake()

        _every(scheduler, self.settings.delivery.interval_seconds, wake_dispatcher, "dispatch")
        if self._discovery is not None:
            _every(
                scheduler,
                self.settings.discovery.interval_seconds,
                self.discover,
                "discovery",
                next_run_time=self.clock(),
            )
        _every(scheduler, max(SILENCE_SWEEP_SECONDS, interval), self.end_silences, "silences")
        _every(scheduler, PRUNE_INTERVAL_SECONDS, self.prune, "prune")
        await self.schedule_digests(scheduler)
        _every(
            scheduler,
            DIGEST_RESYNC_SECONDS,
            functools.partial(self.schedule_digests, scheduler),
            "digest-schedules",
        )
        # Once at start (a date trigger without a date runs now): a digest whose time passed
        # while no replica ran goes out late rather than not at all.
        scheduler.add_job(self.send_digests, "date", id="digest-catch-up", replace_existing=True)
        scheduler.add_listener(self.overruns.skipped_tick, EVENT_JOB_MAX_INSTANCES)
        quiet = _QuietSkips()
        scheduler_log = logging.getLogger("apscheduler.scheduler")
        scheduler_log.addFilter(quiet)
        self._stack.callback(scheduler_log.removeFilter, quiet)
        dispatching = asyncio.create_task(dispatcher.run(), name="dispatcher")
        scheduler.start()
        self._scheduler_running = True
        log.info("notifier running as %s", self.replica_id)
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                {stopped, dispatching}, return_when=asyncio.FIRST_COMPLETED
            )
            if dispatching in done:
                dispatching.result()  # the dispatcher only ends on stop: surface its error
        finally:
            stopped.cancel()
            self._scheduler_running = False
            scheduler.pause()
            # The dispatcher stops claiming, gives its sends the grace period, records their
            # outcomes and releases its leases. A poll under way stops waiting for the polls it
            # has not started, and gets the same grace to finish and write the ones it has.
            dispatcher.stop()
            if self._poller is not None:
                self._poller.stop()
            grace = self.settings.delivery.shutdown_grace_seconds
            try:
                async with asyncio.timeout(grace):
                    async with self._tick_lock:
                        pass
            except TimeoutError:
                log.warning("the poll under way did not finish within %g s", grace)
            await dispatching
            await SqlWatchStore(self.engine).release(self.replica_id)
            scheduler.shutdown(wait=False)
            log.info("notifier stopped")
