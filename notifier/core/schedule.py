"""Which watches to poll next when more are due than Clanforge's rate limit allows.

The rule is the Lagrangian one of Cho and Garcia-Molina's page-refresh policies, with the benefit
of a visit measured as detection delay rather than freshness: poll first the watch whose news,
if any arrived since its last poll, has already waited longest in expectation. For a watch whose
change time T (after its last poll at p) has the conditional distribution F, that expected delay at
``now`` is ``A(now) = integral from p to now of F(s) ds``. Polling the watch with the largest A
stops the most expected lateness per request; for memoryless changes of rate r it settles on
intervals proportional to ``1 / sqrt(r)``, the optimum for mean delay under a fixed budget.

Unlike a web page, a job announces when it expects to finish. A Running job's completion is
modelled as a window around its ETA (upstream's, ours from the progress rate, or what jobs of
the same account service took), narrowed by both when both are known: its A stays near zero
until the window opens and then grows quickly, so requests go to jobs about to finish while a
job with an hour to go costs little. Failures (any moment) and waits in Created, Pending or
Queued are memoryless, at rates learnt from the same history. A job finished for good costs
nothing; a Failed one is polled only at its slow linger interval. A bound on the gap between two
polls of any unfinished watch is served before anything else, so no watch starves.

Everything here is plain data over seconds on one clock (the caller's), so the simulation in
``benchmarks/schedule.py`` runs a day of it in seconds.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from notifier.core.status import COMPLETE, FAILED, RUNNING, SQUASHED, TERMINAL_STATES
from notifier.core.timing import WAITING_STATES

FIRST_SIGHTING: Final = math.inf
"""The urgency of a watch never polled: nothing is known of it, so it goes first."""

_HISTORY_SIZE: Final = 64
_MIN_SAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """What the scheduler assumes where the history says nothing yet, and its one hard bound."""

    max_gap_seconds: float = 120.0
    """No unfinished watch goes longer than this between two polls (when the budget allows it:
    the bound needs ``requests_per_second * max_gap_seconds`` above the unfinished watches)."""
    eta_error: float = 0.2
    """How wrong an upstream ETA can be, as a fraction of the job's expected run."""
    estimate_error: float = 0.3
    """How wrong a progress-rate projection can be, as a fraction of the time it projects."""
    late_window_seconds: float = 30.0
    """A job still running past its window: expect it within this long of the last poll."""
    failure_share: float = 0.2
    """Share of Running jobs that fail, until the account service's history says otherwise."""
    wait_seconds: float = 600.0
    """Mean wait in Created, Pending or Queued, until the history says otherwise."""
    run_seconds: float = 1800.0
    """Typical run of a job with no ETA and no progress yet, until the history says otherwise."""
    finish_weight: float = 3.0
    """How much a minute of an unseen finish costs against one of an unseen end of a wait."""
    failure_weight: float = 20.0
    """How much more a minute of an unseen failure costs than a minute of any other unseen change:
    failures come at any moment, so without this weight a running job's rare failure would lose
    every request to jobs that change more often, and failures would be seen last."""


@dataclass(slots=True)
class _Samples:
    waits: dict[int | None, deque[float]] = field(default_factory=dict)
    """Per waiting state."""
    runs: deque[float] = field(default_factory=lambda: deque(maxlen=_HISTORY_SIZE))
    failed: int = 0
    finished: int = 0
    fitted: tuple[float, float, float] | None = None
    """(run window start, run window end, failure share), while no run sample changes."""
    wait_rates: dict[int | None, float] = field(default_factory=dict)


class History:
    """What similar jobs did: per account service, the latest waits before Running, runs from
    Running to a finish, and how many runs failed. Plain data the caller feeds as it observes."""

    __slots__ = ("_by_service", "_policy", "_pooled_prior", "_pooled_waits")

    def __init__(self, policy: SchedulePolicy) -> None:
        self._policy = policy
        self._by_service: dict[int, _Samples] = {}
        self._pooled_waits: deque[float] = deque(maxlen=_HISTORY_SIZE)
        """The latest waits of every account service and waiting state together."""
        self._pooled_prior: float | None = None

    def record_wait(self, account_service_id: int, state_id: int | None, seconds: float) -> None:
        """A job of this account service left ``state_id`` (a waiting state) after this long."""
        samples = self._samples(account_service_id)
        waits = samples.waits.get(state_id)
        if waits is None:
            waits = samples.waits[state_id] = deque(maxlen=_HISTORY_SIZE)
        waits.append(seconds)
        samples.wait_rates.pop(state_id, None)
        self._pooled_waits.append(seconds)
        if self._pooled_prior is not None:
            # Every rate leans on the pooled prior: recomputed on demand, one sum per change.
            self._pooled_prior = None
            for other in self._by_service.values():
                other.wait_rates.clear()

    def record_run(self, account_service_id: int, seconds: float, *, failed: bool) -> None:
        samples = self._samples(account_service_id)
        if not failed:
            samples.runs.append(seconds)
        samples.finished += 1
        samples.failed += failed
        samples.fitted = None

    def wait_rate(self, account_service_id: int, state_id: int | None) -> float:
        """Ends of waits in this state per second: one over the mean wait of similar jobs,
        with the prior counted as one wait of its own.

        Counting the prior as one wait, rather than alone until several are known, lets a fresh
        process learn from its first few waits.
        """
        samples = self._by_service.get(account_service_id)
        if samples is None:
            return 1 / self.wait_prior()
        rate = samples.wait_rates.get(state_id)
        if rate is None:
            waits = samples.waits.get(state_id, ())
            mean = (sum(waits) + self.wait_prior()) / (len(waits) + 1)
            rate = samples.wait_rates[state_id] = 1 / max(mean, 1.0)
        return rate

    def wait_prior(self) -> float:
        """The mean wait to assume for a state and account service with no waits of their own:
        that of every wait seen, whatever its state and account service, with the policy's
        ``wait_seconds`` counted as one wait of its own.

        Waits seen elsewhere beat a fixed guess: a state not seen yet waits much like the others.
        """
        prior = self._pooled_prior
        if prior is None:
            waits = self._pooled_waits
            prior = self._pooled_prior = (sum(waits) + self._policy.wait_seconds) / (len(waits) + 1)
        return prior

    def record_change(
        self,
        account_service_id: int,
        left: int | None,
        entered: int | None,
        *,
        since: float,
        at: float,
        run_started: float | None = None,
    ) -> bool:
        """A job left ``left`` (entered at ``since``) for ``entered`` at ``at``: the one rule of
        what a change teaches, for the poller, the events table at start-up and the simulation.
        Whether it gave a wait or a run.

        A run is measured from upstream's ``run_started`` where that is earlier: a run first seen
        minutes in (after a restart) is not a short run.
        """
        if left == entered:
            return False
        if left == RUNNING and entered in TERMINAL_STATES:
            start = since if run_started is None else min(run_started, since)
            self.record_run(account_service_id, at - start, failed=entered == FAILED)
        elif left in WAITING_STATES:
            self.record_wait(account_service_id, left, at - since)
        else:
            return False
        return True

    def learn_past(self, changes: Iterable[PastChange]) -> int:
        """Learn from changes of state seen before this process started (the events table),
        oldest first, as if it had seen them itself; how many waits and runs that gave.

        Without it every restart began from the prior: minutes in which waiting jobs were
        polled as if they waited ten minutes and runs were unknown.
        """
        entered: dict[tuple[int, int], PastChange] = {}
        learnt = 0
        for change in changes:
            job = (change.account_service_id, change.image_version_id)
            before = entered.get(job)
            entered[job] = change
            if before is None or before.state_id != change.previous_state_id:
                continue  # what it left was entered before the history kept
            learnt += self.record_change(
                change.account_service_id,
                before.state_id,
                change.state_id,
                since=before.at,
                at=change.at,
                run_started=change.run_started,
            )
        return learnt

    def run_fit(self, account_service_id: int) -> tuple[float, float, float]:
        """(shortest, longest typical run in seconds, share of runs that fail)."""
        samples = self._by_service.get(account_service_id)
        if samples is None:
            return self._prior()
        if samples.fitted is None:
            samples.fitted = self._fit(samples)
        return samples.fitted

    def _prior(self) -> tuple[float, float, float]:
        policy = self._policy
        return policy.run_seconds / 2, policy.run_seconds * 1.5, policy.failure_share

    def _fit(self, samples: _Samples) -> tuple[float, float, float]:
        low, high, share = self._prior()
        if len(samples.runs) >= _MIN_SAMPLES:
            runs = sorted(samples.runs)
            low = runs[len(runs) // 10]
            high = runs[-1 - len(runs) // 10]
        if samples.finished >= _MIN_SAMPLES:
            # One pseudo-run at the prior keeps a short streak of successes from ruling out failure.
            share = (samples.failed + self._policy.failure_share) / (samples.finished + 1)
        return low, high, share

    def _samples(self, account_service_id: int) -> _Samples:
        samples = self._by_service.get(account_service_id)
        if samples is None:
            samples = self._by_service[account_service_id] = _Samples()
        return samples


@dataclass(frozen=True, slots=True)
class PastChange:
    """A change of state a poll saw before this process started (a ``state_changed`` event)."""

    account_service_id: int
    image_version_id: int
    previous_state_id: int | None
    state_id: int | None
    at: float
    """When it was seen, on the scheduler's clock."""
    run_started: float | None = None
    """Upstream's ``start`` of the run, as the status after the change gives it."""


def on_clock(moment: datetime | None) -> float | None:
    """A moment of the service's (aware) clock as the scheduler reads it: Unix seconds."""
    return None if moment is None else moment.timestamp()


@dataclass(frozen=True, slots=True)
class Known:
    """What the poller knows of one watch, in seconds on the scheduler's clock: what a
    budget-aware claim reads of each due watch (the stores build it from their rows with
    :func:`on_clock`) and the scheduler's change model is made from."""

    watch_id: int
    account_service_id: int
    state_id: int | None
    """None: never answered yet."""
    polled_at: float | None
    """The last poll that got an answer: no change happened before it."""
    due_at: float | None
    """When its configured interval lets it be polled again; None once finished for good."""
    state_since: float | None = None
    progress: int = 0
    eta: float | None = None
    eta_estimated: bool = False
    rate_since: float | None = None
    """First poll that saw it Running: the progress rate is measured from there."""
    rate_base_progress: int = 0
    run_started: float | None = None
    """When upstream says the run began (its ``start``): a job first seen Running after a
    restart has run since long before ``state_since``, the moment this process first saw it."""
    updated: float | None = None
    """Upstream's ``updated`` in the last answer: when its progress figure was measured."""


@dataclass(frozen=True, slots=True)
class Outlook:
    """When a watch's next change may come, as the scheduler ranks it; made once per answer."""

    watch_id: int
    due_at: float | None
    polled_at: float | None
    rate: float = 0.0
    """Memoryless changes (failures, ends of waits) per second..."""
    rate_weight: float = 1.0
    """...and what a second of their delay costs."""
    window_from: float = 0.0
    window_to: float = 0.0
    """A finish expected uniformly in this window (after ``polled_at``)..."""
    window_weight: float = 0.0
    """...with this probability, times what a second of its delay costs."""
    fixed: bool = False
    """Polled at its interval alone (Failed, lingering for a retry): no urgency, no starving."""

    def missed(self, now: float) -> float:
        """Expected seconds a change made since the last poll has already waited unseen."""
        since = self.polled_at
        if since is None:
            return FIRST_SIGHTING
        missed = 0.0
        elapsed = now - since
        if self.rate > 0 and elapsed > 0:
            x = self.rate * elapsed
            # elapsed - (1 - e^-x) / rate, by its series where cancellation would eat the digits.
            missed = (
                elapsed * x / 2 * (1 - x / 3) if x < 1e-3 else elapsed - -math.expm1(-x) / self.rate
            ) * self.rate_weight
        if self.window_weight and now > self.window_from:
            width = self.window_to - self.window_from
            if now >= self.window_to:
                missed += self.window_weight * (width / 2 + now - self.window_to)
            else:
                missed += self.window_weight * (now - self.window_from) ** 2 / (2 * width)
        return missed


def outlook(known: Known, history: History, policy: SchedulePolicy) -> Outlook:
    """The change model of one watch after its latest answer."""
    base = Outlook(watch_id=known.watch_id, due_at=known.due_at, polled_at=known.polled_at)
    state = known.state_id
    since = known.polled_at
    if since is None or known.due_at is None or state in (COMPLETE, SQUASHED):
        return base
    if state == FAILED:
        return Outlook(known.watch_id, known.due_at, since, fixed=True)
    if state != RUNNING:
        rate = history.wait_rate(known.account_service_id, state)
        return Outlook(known.watch_id, known.due_at, since, rate=rate)
    run_from, run_to, failure_share = history.run_fit(known.account_service_id)
    started = run_start(known)
    low, high = _finish_window(known, started, run_from, run_to, policy)
    if high <= since:
        # Past every expectation and still running: it may finish any moment now.
        low, high = since, since + policy.late_window_seconds
    low = max(low, since)
    # Every job fails with the same chance whatever its length, so each running job of the
    # account service gets the same failure rate: a long job is not left to fail unseen longer.
    typical_run = (run_from + run_to) / 2
    return Outlook(
        known.watch_id,
        known.due_at,
        since,
        rate=failure_share / typical_run,
        rate_weight=policy.failure_weight,
        window_from=low,
        window_to=max(high, low + 1.0),
        window_weight=policy.finish_weight * (1 - failure_share),
    )


def run_start(known: Known) -> float:
    """When the Running job's run began, as best known: upstream's ``start`` where given (never
    after the first sighting, whatever the clocks' skew), else when the state was first seen.

    The ETA's spread is a share of the whole run: measured from a first sighting minutes into
    a run, as a process that starts while jobs are running would, the window around the ETA
    came out a fraction of its true width, and finishes outside it were seen late.
    """
    seen = known.state_since if known.state_since is not None else known.polled_at
    assert seen is not None
    if known.run_started is None:
        return seen
    return min(known.run_started, seen)


def _finish_window(
    known: Known, started: float, run_from: float, run_to: float, policy: SchedulePolicy
) -> tuple[float, float]:
    """When a Running job should finish: from its ETA, its progress rate, or similar jobs."""
    window: tuple[float, float] | None = None
    if known.eta is not None and not known.eta_estimated:
        spread = policy.eta_error * max(known.eta - started, 0.0)
        window = (known.eta - spread, known.eta + spread)
    projected = _projection(known, policy)
    if projected is not None:
        if window is None:
            window = projected
        else:
            narrowed = (max(window[0], projected[0]), min(window[1], projected[1]))
            if narrowed[0] < narrowed[1]:
                window = narrowed
    if window is None:
        window = (started + run_from, started + run_to)
    return window


def _projection(known: Known, policy: SchedulePolicy) -> tuple[float, float] | None:
    """Where the progress made since the job was first seen Running says it will end."""
    if known.rate_since is None or known.polled_at is None:
        return None
    made = known.progress - known.rate_base_progress
    spent = known.polled_at - known.rate_since
    if made <= 0 or spent <= 0 or known.progress >= 100:
        return None
    per_point = spent / made
    # The progress is as of upstream's last update, which may be seconds before the poll:
    # projected from the poll, the window opens late. An ``updated`` from before the run was
    # first seen says nothing of the progress: ignored.
    measured = known.polled_at
    if known.updated is not None and known.rate_since <= known.updated < measured:
        measured = known.updated
    # Upstream rounds progress down: at 99 % the job may be a moment or a whole point from done.
    soonest = (99 - known.progress) * per_point * (1 - policy.estimate_error)
    latest = (100 - known.progress) * per_point * (1 + policy.estimate_error)
    return measured + soonest, measured + latest


def pick(
    outlooks: Iterable[Outlook],
    now: float,
    slots: int,
    policy: SchedulePolicy,
    horizon_seconds: float = 1.0,
) -> list[int]:
    """The watch ids to poll in the next ``slots`` requests (over ``horizon_seconds``), in order.

    Only watches due by their configured interval are candidates, and never more than ``slots``
    of them. First the watches never polled and the Failed ones at their linger interval; then,
    earliest deadline first, those the gap bound cannot wait for; the rest by the delay their
    news has missed in expectation.
    """
    if slots <= 0:
        return []
    first: list[tuple[float, int]] = []
    unfinished: list[tuple[float, Outlook]] = []
    for candidate in outlooks:
        due = candidate.due_at
        if due is None or due > now:
            continue
        polled = candidate.polled_at
        if polled is None:
            first.append((-math.inf, candidate.watch_id))
        elif candidate.fixed:
            first.append((due, candidate.watch_id))
        else:
            unfinished.append((polled, candidate))
    first.sort()
    chosen = [watch_id for _, watch_id in first[:slots]]
    left = slots - len(chosen)
    if left <= 0 or not unfinished:
        return chosen
    # Polled in order of their last poll at this pace, the i-th would go after i requests: any
    # watch that could then break the bound goes now, with every watch polled before it. Only
    # watches polled before the last of those moments can be in that prefix.
    per_request = horizon_seconds / slots
    slack = now + horizon_seconds - policy.max_gap_seconds
    latest = slack + per_request * len(unfinished)
    oldest = sorted((pair for pair in unfinished if pair[0] < latest), key=_first)
    urgent = 0
    for position, (polled, _) in enumerate(oldest, 1):
        if polled < slack + per_request * position:
            urgent = position
    forced = {candidate.watch_id for _, candidate in oldest[:urgent]}
    chosen.extend(candidate.watch_id for _, candidate in oldest[: min(urgent, left)])
    left = slots - len(chosen)
    if left > 0 and len(forced) < len(unfinished):
        ranked = [
            (candidate.missed(now), candidate.watch_id)
            for _, candidate in unfinished
            if candidate.watch_id not in forced
        ]
        chosen.extend(watch_id for _, watch_id in heapq.nlargest(left, ranked))
    return chosen


def _first(pair: tuple[float, Outlook]) -> float:
    return pair[0]
