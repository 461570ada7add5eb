"""Prometheus metrics: one registry per service instance, so two services (or tests) never mix.

Process counters (polls, deliveries and their latencies) are counted where the work happens:
the poller tells :meth:`Metrics.record_polls` about each batch of fetches once it is fetched,
and each sink is wrapped
in an :class:`InstrumentedSink` that counts its sends, so the dispatcher stays unaware of
metrics. Whole-database figures (outbox depth, active watches, transitions by target state) are
read from the database when ``/metrics`` is scraped: every replica reports the same
values for them, so aggregate those with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
from collections import Counter as CounterOf
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.status import STATE_NAMES
from notifier.core.subscriptions import Subscription
from notifier.notify.sink import Sink
from notifier.polling.poller import BatchTimings
from notifier.store.stats import database_figures

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A batch's phase: milliseconds for a claim or a write of up to 1,000 watches, a tick's length for
# fetching a batch spread over it.
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_PHASES = ("claim", "fetch", "plan", "write")
"""The ``phase`` label values of ``notifier_poll_batch_seconds``, in the order a batch goes."""
# Event seen to delivered: milliseconds when all is well, hours when a receiver was down.
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0)


class _Transitions(Collector):
    """``notifier_transitions_total{state}``: state changes in the event history, by new state."""

    def __init__(self) -> None:
        self.by_state: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "notifier_transitions",
            "State changes detected, by the state reached (whole database).",
            labels=["state"],
        )
        for state, count in sorted(self.by_state.items()):
            family.add_metric([state], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.polls = Counter(
            "notifier_polls",
            "Status fetches from Clanforge, by outcome (ok or the failure reason).",
            ["outcome"],
            registry=self.registry,
        )
        self.poll_seconds = Histogram(
            "notifier_poll_duration_seconds",
            "How long one status fetch from Clanforge took.",
            buckets=_POLL_BUCKETS,
            registry=self.registry,
        )
        self.poll_batch_seconds = Histogram(
            "notifier_poll_batch_seconds",
            "How long each phase of a poll batch (up to 1,000 watches) took: claim, fetch, plan "
            "or write.",
            ["phase"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._batch_phases = [self.poll_batch_seconds.labels(phase) for phase in BATCH_PHASES]
        self.deliveries = Counter(
            "notifier_deliveries",
            "Delivery attempts, by sink and outcome (delivered; failed, to be retried; rejected).",
            ["sink", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "notifier_delivery_latency_seconds",
            "From the event being seen to its delivery succeeding.",
            ["sink"],
            buckets=_DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "notifier_outbox_depth",
            "Deliveries waiting to be sent (whole database).",
            registry=self.registry,
        )
        self.active_watches = Gauge(
            "notifier_active_watches",
            "Watches that are active (whole database).",
            registry=self.registry,
        )
        self.poll_ticks_skipped = Counter(
            "notifier_poll_ticks_skipped",
            "Poll ticks skipped because the one before was still polling: the Clanforge budget "
            "binds (more is due than requests_per_second lets a tick poll).",
            registry=self.registry,
        )
        self._transitions = _Transitions()
        self.registry.register(self._transitions)

    async def refresh(self, engine: AsyncEngine) -> None:
        """Read the whole-database figures; called on each scrape."""
        figures = await database_figures(engine)
        self.outbox_depth.set(figures.pending_deliveries)
        self.active_watches.set(figures.active_watches)
        self._transitions.by_state = transitions_by_known_state(
            figures.transitions_by_state.items()
        )

    def record_polls(self, seconds: Sequence[float], outcomes: CounterOf[str]) -> None:
        """A batch's status fetches, told by the poller once the batch is fetched (its
        ``observe_fetches``): their durations, and how many ended how."""
        observe = self.poll_seconds.observe
        for duration in seconds:
            observe(duration)
        for outcome, count in outcomes.items():
            if count:
                self.polls.labels(outcome).inc(count)

    def record_batch(self, timings: BatchTimings) -> None:
        """A poll batch's phases, told by the poller once the batch is written (its
        ``observe_batch``)."""
        claim, fetch, plan, write = self._batch_phases
        claim.observe(timings.claim)
        fetch.observe(timings.fetch)
        plan.observe(timings.plan)
        write.observe(timings.write)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class InstrumentedSink:
    """A :class:`Sink` that counts each send by outcome and measures event-seen-to-delivered
    latency, so that the dispatcher stays unaware of metrics."""

    def __init__(
        self, name: str, sink: Sink, metrics: Metrics, clock: Callable[[], datetime]
    ) -> None:
        self._name = name
        self._sink = sink
        self._metrics = metrics
        self._clock = clock
        self._delivered = metrics.deliveries.labels(name, "delivered")
        self._latency = metrics.delivery_latency.labels(name)

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        await self._counted(self._sink.deliver(event, subscription))
        seconds = (self._clock() - event.occurred_at).total_seconds()
        self._latency.observe(max(seconds, 0.0))

    async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
        await self._counted(self._sink.deliver_digest(digest, subscription))

    async def _counted(self, sending: Awaitable[None]) -> None:
        try:
            await sending
        except DeliveryFailed as failure:
            self._failed("rejected" if failure.permanent else "failed")
            raise
        except Exception:
            self._failed("failed")
            raise
        self._delivered.inc()

    def _failed(self, outcome: str) -> None:
        self._metrics.deliveries.labels(self._name, outcome).inc()


OTHER_STATE = "other"
"""The label of every state name upstream sends that is not one of Clanforge's documented states."""
_KNOWN_STATES = frozenset(STATE_NAMES.values())


def transitions_by_known_state(rows: Iterable[tuple[object, int]]) -> dict[str, int]:
    """Counts by state, the labels limited to the known states and :data:`OTHER_STATE`: a label
    per name upstream chooses would be a series per name, without end."""
    counts: dict[str, int] = {}
    for name, count in rows:
        label = name if isinstance(name, str) and name in _KNOWN_STATES else OTHER_STATE
        counts[label] = counts.get(label, 0) + int(count)
    return counts
