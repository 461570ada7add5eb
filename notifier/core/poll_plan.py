"""What one poll of one watch means, as plain data: the pure core of the poll tick.

The tick fetches, then asks :func:`plan_success` or :func:`plan_failure` what to write; the store
writes every plan of the tick in one transaction.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from notifier.core.detector import carry_known_state, detect
from notifier.core.event_ids import new_event_id as default_event_id
from notifier.core.events import POLL_FAILING, POLL_RECOVERED, Detected, Event
from notifier.core.retry import Retry, RetryPolicy
from notifier.core.silences import Silence, holding_silence
from notifier.core.status import (
    COMPLETE,
    CREATED,
    FAILED,
    PENDING,
    RUNNING,
    SQUASHED,
    JobStatus,
)
from notifier.core.subscriptions import Subscription, matches
from notifier.core.timing import (
    WAITING_STATES,
    DetectPolicy,
    Tracking,
    detect_timing,
    estimate_eta,
)
from notifier.core.upstream_errors import (
    ACCESS_DENIED,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UpstreamError,
)

# Polling errors back off to at most this many intervals, so a recovered upstream is seen soon.
MAX_ERROR_BACKOFF_INTERVALS = 8

PAUSING_REASONS: Final = frozenset({CREDENTIALS_REJECTED, ACCESS_DENIED, NOT_FOUND})
"""Failures that polling again cannot fix: the watch waits for ``notifier watch resume``."""

_DEFAULT_DETECT: Final = DetectPolicy()


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often a watch is polled, by state, and when failing polls are announced.

    ``[poll]`` in the configuration builds it; these defaults are the configuration's too.
    """

    interval_seconds: float = 30
    running_interval_seconds: float = 10
    failed_interval_seconds: float = 300
    """A failed job can be retried upstream and go back to Queued: keep looking, slowly..."""
    failed_linger_seconds: float = 3600
    """...for this long."""
    waiting_interval_seconds: float | None = None
    """Created and Pending jobs rarely move fast; None: twice ``interval_seconds``."""
    failure_threshold: int = 3
    """One watch.poll_failing after this many failed polls in a row."""
    spread: float = 0.5
    """Fraction of the tick over which one tick's polls are spread instead of all at its start."""
    max_gap_seconds: float = 120.0
    """While more is due than the rate limit polls, no unfinished watch waits longer than this
    between two polls (the budget-aware claim, :mod:`notifier.core.schedule`)."""

    def waiting_interval(self) -> float:
        return self.waiting_interval_seconds or self.interval_seconds * 2

    @property
    def tick_seconds(self) -> float:
        """How often the service ticks: the fastest any watch can be due."""
        return min(self.interval_seconds, self.running_interval_seconds)


class ClaimedWatch(NamedTuple):
    """A watch leased for this tick, with what we remembered of it: enough to poll it, to
    settle a reply that is no news, and to plan one that is.

    The claim reads what polling and settling take; ``previous`` and ``tracking``, the stored
    status and timing memory, are loaded only for a reply that is news
    (:meth:`notifier.store.watch_store.WatchStore.load_memory`). A tuple because a tick makes
    one per watch, straight from a row.
    """

    watch_id: int
    account_service_id: int
    image_version_id: int
    label: str
    poll_errors: int
    previous: JobStatus | None
    state_since: datetime | None
    """When the stored state began; None: never seen (no stored status)."""
    tracking: Tracking | None = None
    poll_failing: bool = False
    """A ``watch.poll_failing`` was sent and no ``watch.poll_recovered`` since."""
    interval_seconds: float | None = None
    """This watch's own poll interval, overriding the one by state while the job is unfinished."""
    reply_digest: bytes | None = None
    """Digest of the reply body behind the stored status; None for rows stored before digests
    were."""
    quiet_until: datetime | None = None
    """Until when a reply with ``reply_digest`` is no news, as the last planned poll decided
    (:attr:`PollPlan.quiet_until`); None: no deadline."""
    next_poll_at: datetime | None = None
    """When it falls due: the poller claims ahead of it and waits for this moment."""
    state_id: int | None = None
    """The stored status's state id (``previous.state_id`` once loaded)."""

    def unchanged_digest(self, now: datetime) -> bytes | None:
        """The digest of a reply that needs no planning at ``now``, or None if every reply does."""
        if self.quiet_until is not None and now >= self.quiet_until:
            return None
        return self.reply_digest

    def unchanged_next_poll(self, now: datetime, poll: PollPolicy) -> datetime | None:
        """When to poll again after the :meth:`unchanged_digest` reply came back at ``now``:
        the schedule :func:`plan_success` gives the stored status (nothing else changes)."""
        since = now if self.state_since is None else self.state_since
        return next_poll_at(self.state_id, since, now, poll, self.interval_seconds)


def _loaded(due: ClaimedWatch) -> ClaimedWatch:
    """``due``, refused if it has a stored status that was not loaded: planning it as never
    seen would announce a first sighting."""
    if due.state_since is not None and due.previous is None:
        raise ValueError(f"watch {due.watch_id}: plan with its stored status loaded")
    return due


@dataclass(frozen=True, slots=True)
class PollPlan:
    watch_id: int
    next_poll_at: datetime | None
    poll_errors: int
    last_poll_error: str | None
    status: JobStatus | None = None
    """The status to store; None when nothing changed (no write)."""
    first_sighting: bool = False
    state_since: datetime | None = None
    events: Sequence[Event] = field(default_factory=tuple)
    tracking: Tracking | None = None
    """The timing memory to store with ``status`` (written together with it)."""
    poll_failing: bool = False
    paused_reason: str | None = None
    """Set when this poll paused the watch: why, in one line."""
    shown_changed: bool = False
    """Same state, but what a live message shows (progress, ETA, estimated ETA) changed."""
    reply_digest: bytes | None = None
    """Digest of the reply behind ``status``, stored with it."""
    quiet_until: datetime | None = None
    """Until when a reply identical to the stored one can only confirm it (no event, nothing
    stored but the schedule): the unchanged-poll skip, decided here and stored with the
    schedule. None: no deadline. The moment of the poll itself: every reply is planned."""


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    event_id: str
    subscription_id: int
    watch_id: int
    silence_id: int | None = None
    """The silence holding the watch: the delivery waits ("held") instead of going out."""


@dataclass(frozen=True, slots=True)
class PlannedRefresh:
    """Re-render this subscription's Slack live message of this watch, if it has one."""

    subscription_id: int
    watch_id: int


def next_poll_at(
    state_id: int | None,
    state_since: datetime,
    now: datetime,
    poll: PollPolicy,
    override_seconds: float | None = None,
) -> datetime | None:
    """When to look again; None once the job is finished for good.

    Running polls fastest, Queued (and unknown states) at the base interval, Created and Pending
    slower; a Failed job lingers at a slow poll because a retry sends it back to Queued.
    """
    if state_id == FAILED and now - state_since >= timedelta(seconds=poll.failed_linger_seconds):
        return None
    interval = poll_interval(state_id, poll, override_seconds)
    return None if interval is None else now + timedelta(seconds=interval)


def poll_interval(
    state_id: int | None, poll: PollPolicy, override_seconds: float | None = None
) -> float | None:
    """Seconds between polls of a job in this state; None for a job finished for good."""
    if state_id in (COMPLETE, SQUASHED):
        return None
    if state_id == FAILED:
        return poll.failed_interval_seconds
    if override_seconds is not None:
        return override_seconds
    if state_id == RUNNING:
        return poll.running_interval_seconds
    if state_id in (CREATED, PENDING):
        return poll.waiting_interval()
    return poll.interval_seconds


def plan_success(
    due: ClaimedWatch,
    observed: JobStatus,
    now: datetime,
    poll: PollPolicy,
    new_event_id: Callable[[], str],
    detect_settings: DetectPolicy = _DEFAULT_DETECT,
    reply_digest: bytes | None = None,
) -> PollPlan:
    """What a poll that got a status means: state events, timing events, our ETA, recovery.

    The status (with the timing memory and the reply's digest) is written only when it or that
    memory changed, or when a stored status has no digest yet (written once, so later identical
    replies are settled by :meth:`ClaimedWatch.unchanged_digest` until the plan's
    ``quiet_until``).
    """
    due = _loaded(due)
    observed = carry_known_state(due.previous, observed)
    state_changed = due.previous is None or due.previous.state_id != observed.state_id
    state_since = now if state_changed or due.state_since is None else due.state_since
    tracking = due.tracking if due.tracking is not None else Tracking()
    if state_changed:
        tracking = Tracking()
    current = estimate_eta(observed, tracking, now, detect_settings)
    detected = detect(due.previous, current)
    timing, new_tracking = detect_timing(
        due.previous, due.tracking, current, state_since, now, detect_settings
    )
    if due.poll_failing:
        last = due.previous if due.previous is not None else current
        detected.insert(
            0,
            Detected(
                POLL_RECOVERED, last, current, {"consecutive_failures": max(due.poll_errors, 1)}
            ),
        )
    detected.extend(timing)
    events = _events(due, detected, now, new_event_id)
    changed = (
        current != due.previous
        or new_tracking != due.tracking
        or (due.reply_digest is None and reply_digest is not None)
    )
    shown_changed = (
        due.previous is not None and not state_changed and _shown(current) != _shown(due.previous)
    )
    return PollPlan(
        watch_id=due.watch_id,
        next_poll_at=next_poll_at(current.state_id, state_since, now, poll, due.interval_seconds),
        poll_errors=0,
        last_poll_error=None,
        status=current if changed else None,
        first_sighting=due.previous is None,
        state_since=state_since,
        events=events,
        tracking=new_tracking,
        poll_failing=False,
        shown_changed=shown_changed,
        reply_digest=reply_digest,
        quiet_until=_quiet_until(current, new_tracking, state_since, now, detect_settings, poll),
    )


def _quiet_until(
    status: JobStatus,
    tracking: Tracking,
    state_since: datetime,
    now: datetime,
    detect: DetectPolicy,
    poll: PollPolicy,
) -> datetime | None:
    """Until when the same reply again can only confirm ``status``: the first moment one of the
    time-driven rules above (failed linger, stall, overdue, our moving ETA) could make news.

    ``now`` when that moment is already here or cannot be known, so every poll is planned.
    """
    state = status.state_id
    if state in (COMPLETE, SQUASHED):
        return None
    if state == FAILED:
        return state_since + timedelta(seconds=poll.failed_linger_seconds)
    if status.eta_estimated or (
        state == RUNNING
        and detect.estimate_eta
        and status.eta is None
        and tracking.rate_base_progress < status.progress < 100
    ):
        return now  # our ETA estimate moves with the clock
    deadlines: list[datetime] = []
    if not tracking.stalled:
        if state == RUNNING and detect.stall_after_seconds > 0:
            if tracking.moved_at is None:
                return now
            deadlines.append(tracking.moved_at + timedelta(seconds=detect.stall_after_seconds))
        elif state in WAITING_STATES and detect.waiting_stall_after_seconds > 0:
            deadlines.append(state_since + timedelta(seconds=detect.waiting_stall_after_seconds))
    if status.eta is not None and not tracking.overdue:
        deadlines.append(status.eta + timedelta(seconds=detect.overdue_grace_seconds))
    return min(deadlines, default=None)


def _shown(status: JobStatus) -> tuple[int, datetime | None, bool]:
    """The parts of a status that a live message shows and that change without a state change."""
    return (status.progress, status.eta, status.eta_estimated)


def error_backoff_policy(poll: PollPolicy) -> RetryPolicy:
    """The shared retry policy, with a schedule that doubles from the base poll interval."""
    return RetryPolicy(
        schedule_seconds=tuple(
            poll.interval_seconds * 2**step
            for step in range(MAX_ERROR_BACKOFF_INTERVALS.bit_length())
        ),
        # A watch keeps being polled (at the capped delay) however long upstream fails.
        max_attempts=sys.maxsize,
        max_age_seconds=math.inf,
    )


def plan_failure(
    due: ClaimedWatch,
    error: UpstreamError,
    now: datetime,
    poll: PollPolicy,
    new_event_id: Callable[[], str] | None = None,
    rand: Callable[[], float] = random.random,
) -> PollPlan:
    """A failed poll changes no status and no state event; it backs off, and tells people once.

    A 429 is upstream pacing us, not a fault of this watch: it waits ``Retry-After`` and counts
    for nothing (an unchanged reply after it stays as quiet as before). Rejected credentials, a
    denied account service or an unknown image version pause the watch at once (polling again
    cannot fix them). Anything else backs off with jitter per the shared retry policy, and after
    ``poll.failure_threshold`` failures in a row raises one ``watch.poll_failing``.
    """
    due = _loaded(due)
    if error.reason == RATE_LIMITED:
        wait = error.retry_after if error.retry_after is not None else poll.interval_seconds
        return PollPlan(
            watch_id=due.watch_id,
            next_poll_at=now + timedelta(seconds=wait),
            poll_errors=due.poll_errors,
            last_poll_error=error.message,
            poll_failing=due.poll_failing,
            quiet_until=due.quiet_until,
        )
    errors = due.poll_errors + 1
    pausing = error.reason in PAUSING_REASONS
    if pausing:
        when: datetime | None = None
    else:
        policy = error_backoff_policy(poll)
        attempt = min(errors, len(policy.schedule_seconds))
        decision = policy.decide(attempt, now, now, retry_after=error.retry_after, rand=rand)
        assert isinstance(decision, Retry)  # no attempt or age limit: always a next poll
        when = decision.at
    failing = due.poll_failing
    events: tuple[Event, ...] = ()
    if not failing and (pausing or errors >= poll.failure_threshold):
        failing = True
        detail: dict[str, Any] = {
            "reason": error.reason,
            "message": error.message,
            "consecutive_failures": errors,
            "paused": pausing,
        }
        if error.credential is not None:
            detail["credential"] = error.credential
        last = due.previous if due.previous is not None else _unknown(due.image_version_id)
        events = _events(
            due,
            [Detected(POLL_FAILING, last, last, detail)],
            now,
            new_event_id or default_event_id,
        )
    return PollPlan(
        watch_id=due.watch_id,
        next_poll_at=when,
        poll_errors=errors,
        last_poll_error=error.message,
        events=events,
        poll_failing=failing,
        paused_reason=error.message if pausing else None,
        # The next reply is planned whatever its bytes: it clears the errors or announces the
        # recovery.
        quiet_until=now,
    )


def _unknown(image_version_id: int) -> JobStatus:
    """The status a ``watch.*`` event carries for a job never seen: state unknown."""
    return JobStatus(
        image_version_id=image_version_id,
        state_id=None,
        state="Unknown",
        progress=0,
        eta=None,
        error=None,
        failed_count=0,
        created=None,
        started=None,
        updated=None,
    )


def _events(
    due: ClaimedWatch,
    detected: Sequence[Detected],
    now: datetime,
    new_event_id: Callable[[], str],
) -> tuple[Event, ...]:
    return tuple(d.event(new_event_id(), now, due) for d in detected)


def plan_deliveries(
    plans: Sequence[PollPlan],
    subscriptions: Sequence[Subscription],
    held: Mapping[int, int] | None = None,
) -> list[PlannedDelivery]:
    """One delivery per (event, subscription that wants it), in event order; those of a watch
    in ``held`` (watch id -> the silence holding it, :func:`held_watches`) wait for its end."""
    held = held or {}
    return [
        PlannedDelivery(event.id, subscription.id, plan.watch_id, held.get(plan.watch_id))
        for plan in plans
        for event in plan.events
        for subscription in subscriptions
        if matches(subscription, event)
    ]


def plan_refreshes(
    plans: Sequence[PollPlan],
    subscriptions: Sequence[Subscription],
    deliveries: Sequence[PlannedDelivery],
    held: Mapping[int, int] | None = None,
) -> list[PlannedRefresh]:
    """A live-message refresh per Slack channel for each watch whose shown status moved.

    Only a progress/ETA-only change needs one: a state change has its events, and a pair that
    already gets a delivery this tick re-renders the newest status with it. A silenced watch
    gets none: a silence sends nothing until it ends. The store writes a refresh only where a
    live message exists and merges it into an unclaimed one already queued.
    """
    covered = {(d.subscription_id, d.watch_id) for d in deliveries}
    silenced = held or {}
    return [
        PlannedRefresh(subscription.id, plan.watch_id)
        for plan in plans
        if plan.shown_changed and plan.watch_id not in silenced
        for subscription in subscriptions
        if subscription.kind == "slack_channel" and (subscription.id, plan.watch_id) not in covered
    ]


def held_watches(
    watches: Iterable[tuple[ClaimedWatch, datetime]], silences: Sequence[Silence]
) -> dict[int, int]:
    """Watch id -> the silence holding it at the moment it was polled, for the watches held."""
    if not silences:
        return {}
    held: dict[int, int] = {}
    for watch, at in watches:
        silence = holding_silence(
            silences, watch.account_service_id, watch.image_version_id, watch.label, at
        )
        if silence is not None:
            held[watch.watch_id] = silence.id
    return held
