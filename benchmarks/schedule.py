"""``python -m benchmarks.schedule [--quick] [--seed N]``: detection delay under a rate limit.

The scheduler of ``notifier.core.schedule`` on a simulated clock, over seeded synthetic fleets,
against exact round-robin over every watch and over the unfinished ones at the same budget, and
against an oracle that knows every change in advance (the bound no schedule can beat).

A fleet is a watch list of which most jobs finished long ago, and lanes that each run one job at
a time: Created, then Queued after an exponential wait, then Running after a heavy-tailed wait
nobody can predict, then Complete, or Failed (a fifth of the jobs, at a moment nobody can
predict). Upstream gives an ETA when a job starts Running, right to within 20 %, and a progress
percentage whose speed varies along the run. A new job's watch is added to the list, and the
watch whose job finished first is dropped, so the list keeps its size.

The detection delay of a change is the first poll that sees it (or a later state) minus the
change. Every policy polls at most ``requests_per_second`` a second, each request in a slot of
its own; the service's tick is one second, and the scheduler's intervals are one second (two in
Created), as in issue 24's end-to-end run.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from notifier.core.schedule import (
    History,
    Known,
    Outlook,
    SchedulePolicy,
    outlook,
    pick,
)
from notifier.core.status import COMPLETE, CREATED, FAILED, QUEUED, RUNNING, TERMINAL_STATES

DAY = 86_400.0
WARM_UP = 7_200.0
TICK = 1.0
INTERVAL = 1.0
WAITING_INTERVAL = 2.0
FAILED_INTERVAL = 300.0
FAILED_LINGER = 3_600.0
SERVICES = 5
KINDS = ("all", "complete", "failed")


@dataclass(frozen=True, slots=True)
class Fleet:
    name: str
    watches: int
    lanes: int
    requests_per_second: int
    max_gap_seconds: float


FLEETS = (
    Fleet("300 watches, 10 requests/s", 300, 125, 10, 60.0),
    Fleet("5,000 watches, 5 requests/s", 5_000, 250, 5, 120.0),
)


@dataclass(frozen=True, slots=True)
class Job:
    """One image version job as upstream lives it."""

    watch_id: int
    account_service_id: int
    created: float
    queued: float
    running: float
    end: float
    failed: bool
    eta: float
    speeds: tuple[float, ...]
    """Relative progress speed over equal quarters of the run."""
    updates_every: float = 0.0
    """Upstream moves the progress (and ``updated``) only this often, from the clock's zero and
    at each change of state; 0: at every moment."""

    def updated_at(self, t: float) -> float:
        """When upstream last updated the job, as an answer at ``t`` says."""
        every = self.updates_every
        if every <= 0 or t >= self.end:
            return min(t, self.end)
        moment = every * math.floor(t / every)
        for change in (self.queued, self.running):
            if moment < change <= t:
                moment = change
        return moment

    def state_at(self, t: float) -> int:
        if t < self.queued:
            return CREATED
        if t < self.running:
            return QUEUED
        if t < self.end:
            return RUNNING
        return FAILED if self.failed else COMPLETE

    def progress_at(self, t: float) -> int:
        if t < self.running:
            return 0
        t = self.updated_at(t)
        duration = (self.end - self.running) if not self.failed else self._full_run()
        done = min(max((min(t, self.end) - self.running) / duration, 0.0), 1.0)
        total = sum(self.speeds)
        part = len(self.speeds)
        whole = int(done * part)
        made = sum(self.speeds[:whole])
        if whole < part:
            made += self.speeds[whole] * (done * part - whole)
        return min(int(100 * made / total), 100 if t >= self.end and not self.failed else 99)

    def _full_run(self) -> float:
        # A failed job's run would have lasted as long as its ETA was meant to say, roughly.
        return max(self.eta - self.running, 1.0)

    def changes(self) -> list[tuple[float, str]]:
        return [
            (self.queued, "queued"),
            (self.running, "running"),
            (self.end, "failed" if self.failed else "complete"),
        ]


def make_fleet(
    fleet: Fleet, seed: int, hours: float, warm_up: float = WARM_UP
) -> tuple[list[int], list[Job]]:
    """The watches finished before the start (ids), and every job the lanes run."""
    rng = random.Random(seed)
    horizon = warm_up + hours * 3600
    jobs: list[Job] = []
    next_id = fleet.watches - fleet.lanes
    finished = list(range(next_id))
    for lane in range(fleet.lanes):
        t = rng.uniform(0, 1_800)
        while t < horizon:
            queued = t + rng.expovariate(1 / 60)
            running = queued + rng.lognormvariate(math.log(120), 1.0)
            run = rng.lognormvariate(math.log(900), 0.6)
            eta = running + run * (1 + rng.uniform(-0.2, 0.2))
            failed = rng.random() < 0.2
            end = running + run * (rng.uniform(0.05, 0.95) if failed else 1)
            speeds = tuple(rng.uniform(0.5, 1.5) for _ in range(4))
            jobs.append(Job(next_id, lane % SERVICES, t, queued, running, end, failed, eta, speeds))
            next_id += 1
            t = end + rng.expovariate(1 / 300)
    jobs.sort(key=lambda job: job.created)
    return finished, jobs


@dataclass(slots=True)
class Result:
    delays: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    requests: int = 0
    busy_slots: int = 0
    busy_used: int = 0
    max_gap: float = 0.0
    seconds: float = 0.0
    in_state: dict[int, float] = field(default_factory=dict)
    """Jobs in each state on average over the measured hours."""


class Policy:
    """Chooses the watches of one tick; told what each poll saw."""

    name = ""

    def add(self, job: Job, t: float) -> None: ...

    def drop(self, watch_id: int) -> None: ...

    def choose(self, now: float, slots: int) -> tuple[list[int | None], bool]:
        """The watches to poll this tick, slot by slot (None: an idle slot), and whether more
        was due than the slots allow."""
        raise NotImplementedError

    def saw(self, watch_id: int, t: float, job: Job | None) -> None: ...


class RoundRobin(Policy):
    """Exact round-robin over the watch list, or over the watches not known to be finished."""

    def __init__(self, finished: list[int], *, skip_finished: bool) -> None:
        self.name = "round-robin, unfinished" if skip_finished else "round-robin, every watch"
        self._skip = skip_finished
        self._ring: deque[int] = deque(() if skip_finished else finished)
        self._gone: set[int] = set()

    def add(self, job: Job, t: float) -> None:
        self._ring.append(job.watch_id)

    def drop(self, watch_id: int) -> None:
        self._gone.add(watch_id)

    def choose(self, now: float, slots: int) -> tuple[list[int | None], bool]:
        chosen: list[int | None] = []
        ring = self._ring
        seen: set[int] = set()
        while ring and len(chosen) < slots:
            watch_id = ring.popleft()
            if watch_id in self._gone:
                self._gone.discard(watch_id)
                continue
            if watch_id in seen:
                ring.appendleft(watch_id)
                break
            seen.add(watch_id)
            chosen.append(watch_id)
            ring.append(watch_id)
        return chosen, len(ring) >= slots

    def saw(self, watch_id: int, t: float, job: Job | None) -> None:
        if self._skip and job is not None and job.state_at(t) in TERMINAL_STATES:
            self._gone.add(watch_id)


class Oracle(Policy):
    """Knows every change in advance: each slot polls the oldest change not yet seen."""

    name = "oracle (knows every change)"

    def __init__(self, jobs: Iterable[Job], since: float = -math.inf) -> None:
        """``since``: changes before it were seen before the measure began (no poll goes to
        them)."""
        self._pending = sorted(
            (at, job.watch_id) for job in jobs for at, _ in job.changes() if at >= since
        )
        self._next = 0

    def choose(self, now: float, slots: int) -> tuple[list[int | None], bool]:
        chosen: list[int | None] = []
        step = TICK / slots
        for slot in range(slots):
            at = now + slot * step
            if self._next < len(self._pending) and self._pending[self._next][0] <= at:
                chosen.append(self._pending[self._next][1])
                self._next += 1
            else:
                chosen.append(None)
        return chosen, False


class Scheduled(Policy):
    """The service's scheduler: what the poller would know, ranked by ``pick``."""

    name = "scheduler"

    def __init__(self, policy: SchedulePolicy) -> None:
        self._policy = policy
        self._history = History(policy)
        self._known: dict[int, Known] = {}
        self._outlooks: dict[int, Outlook] = {}

    def add(self, job: Job, t: float) -> None:
        known = Known(job.watch_id, job.account_service_id, None, None, t)
        self._known[job.watch_id] = known
        self._outlooks[job.watch_id] = outlook(known, self._history, self._policy)

    def drop(self, watch_id: int) -> None:
        self._known.pop(watch_id, None)
        self._outlooks.pop(watch_id, None)

    def choose(self, now: float, slots: int) -> tuple[list[int | None], bool]:
        chosen: list[int | None] = []
        chosen += pick(self._outlooks.values(), now, slots, self._policy, TICK)
        if len(chosen) < slots:
            return chosen, False
        due = 0
        for candidate in self._outlooks.values():
            if candidate.due_at is not None and candidate.due_at <= now:
                due += 1
        return chosen, due > slots

    def saw(self, watch_id: int, t: float, job: Job | None) -> None:
        known = self._known.get(watch_id)
        if known is None or job is None:
            return
        state = job.state_at(t)
        progress = job.progress_at(t)
        since = known.state_since if known.state_since is not None else t
        rate_since, base = known.rate_since, known.rate_base_progress
        if state != known.state_id:
            self._learn(known, state, t)
            since = t
            rate_since, base = (t, progress) if state == RUNNING else (None, 0)
        known = Known(
            watch_id,
            known.account_service_id,
            state,
            t,
            _due(state, since, t),
            state_since=since,
            progress=progress,
            eta=job.eta if state in (RUNNING, FAILED, COMPLETE) else None,
            rate_since=rate_since,
            rate_base_progress=base,
            run_started=job.running if state in (RUNNING, FAILED, COMPLETE) else None,
            updated=job.updated_at(t),
        )
        if known.due_at is None:
            self.drop(watch_id)
            return
        self._known[watch_id] = known
        self._outlooks[watch_id] = outlook(known, self._history, self._policy)

    def _learn(self, known: Known, state: int, t: float) -> None:
        if known.state_id is None or known.state_since is None:
            return
        self._history.record_change(
            known.account_service_id,
            known.state_id,
            state,
            since=known.state_since,
            at=t,
            run_started=known.run_started,
        )


def _due(state: int, since: float, t: float) -> float | None:
    if state == COMPLETE:
        return None
    if state == FAILED:
        return None if t - since >= FAILED_LINGER else t + FAILED_INTERVAL
    return t + (WAITING_INTERVAL if state == CREATED else INTERVAL)


def simulate(
    fleet: Fleet,
    make_policy: Callable[[list[int], list[Job]], Policy],
    seed: int,
    hours: float,
    warm_up: float = WARM_UP,
) -> tuple[str, Result]:
    """One policy over one fleet: the delays of the changes made after ``warm_up`` seconds."""
    finished, jobs = make_fleet(fleet, seed, hours, warm_up)
    policy = make_policy(finished, jobs)
    by_watch = {job.watch_id: job for job in jobs}
    changes = {job.watch_id: job.changes() for job in jobs}
    seen = dict.fromkeys(by_watch, 0)
    dead: deque[int] = deque(finished)
    ends = sorted((job.end, job.watch_id) for job in jobs)
    ended = 0
    last_poll: dict[int, float] = {}
    result = Result()
    end = warm_up + hours * 3600
    slots = fleet.requests_per_second
    step = TICK / slots
    arrivals = 0
    size = len(finished)
    started = time.perf_counter()
    now = 0.0
    while now < end + 1_800:
        while arrivals < len(jobs) and jobs[arrivals].created <= now:
            arrived = jobs[arrivals]
            arrivals += 1
            policy.add(arrived, arrived.created)
            last_poll[arrived.watch_id] = arrived.created
            while ended < len(ends) and ends[ended][0] <= now - 600:
                dead.append(ends[ended][1])
                ended += 1
            size += 1
            if dead and size > fleet.watches:
                size -= 1
                gone = dead.popleft()
                policy.drop(gone)
                last_poll.pop(gone, None)
        if warm_up <= now < end and now % 60 == 0:
            for job in jobs[:arrivals]:
                if job.end > now:
                    state = job.state_at(now)
                    result.in_state[state] = result.in_state.get(state, 0) + 60 / (end - warm_up)
        chosen, busy = policy.choose(now, slots)
        if busy and warm_up <= now < end:
            result.busy_slots += slots
            result.busy_used += len(chosen)
        for slot, watch_id in enumerate(chosen):
            if watch_id is None:
                continue
            t = now + slot * step
            seen_job = by_watch.get(watch_id)
            policy.saw(watch_id, t, seen_job)
            if warm_up <= now < end:
                result.requests += 1
            if seen_job is None:
                continue
            before = last_poll.get(watch_id)
            if (
                before is not None
                and now >= warm_up
                and seen_job.state_at(before) not in TERMINAL_STATES
            ):
                result.max_gap = max(result.max_gap, t - before)
            last_poll[watch_id] = t
            done = seen[watch_id]
            pending = changes[watch_id]
            while done < len(pending) and pending[done][0] <= t:
                at, kind = pending[done]
                if warm_up <= at < end:
                    delay = t - at
                    result.delays["all"].append(delay)
                    if kind in ("complete", "failed"):
                        result.delays[kind].append(delay)
                done += 1
                if kind in ("complete", "failed"):
                    done = len(pending)
            seen[watch_id] = done
        now += TICK
    result.seconds = time.perf_counter() - started
    return policy.name, result


def percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_fleet(
    fleet: Fleet, seed: int, hours: float, warm_up: float = WARM_UP
) -> list[tuple[str, Result]]:
    policy = SchedulePolicy(max_gap_seconds=fleet.max_gap_seconds)
    makers: list[Callable[[list[int], list[Job]], Policy]] = [
        lambda finished, jobs: RoundRobin(finished, skip_finished=False),
        lambda finished, jobs: RoundRobin(finished, skip_finished=True),
        lambda finished, jobs: Scheduled(policy),
        lambda finished, jobs: Oracle(jobs),
    ]
    return [simulate(fleet, make, seed, hours, warm_up) for make in makers]


def render(fleet: Fleet, results: list[tuple[str, Result]], hours: float) -> str:
    """A Markdown table of one fleet's results, and what its Running jobs alone would cost."""
    baseline = {kind: percentile(results[0][1].delays[kind], 0.95) for kind in KINDS}
    in_state = results[0][1].in_state
    running = in_state.get(RUNNING, 0.0)
    floor = 0.95 * running / fleet.requests_per_second
    lines = [
        f"**{fleet.name}**: {fleet.lanes} lanes of jobs, gap bound {fleet.max_gap_seconds:g} s, "
        f"{hours:g} h simulated after {WARM_UP / 3600:g} h of warm-up, "
        f"{len(results[0][1].delays['all']):,} changes. Jobs on average: "
        f"{in_state.get(CREATED, 0.0):.0f} Created, {in_state.get(QUEUED, 0.0):.0f} Queued, "
        f"{running:.0f} Running. Failures come at any moment: even with every request spent on "
        f"the Running jobs in turn, their p95 would be {floor:.1f} s "
        f"({floor / baseline['failed']:.2f} of round-robin).",
        "",
        "| policy | all: p50 / p95 s (ratio) | → Complete | → Failed | requests/s "
        "| budget used while more was due | longest gap, unfinished watch |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results:
        cells = []
        for kind in KINDS:
            values = result.delays[kind]
            p95 = percentile(values, 0.95)
            cells.append(f"{percentile(values, 0.5):.2f} / {p95:.2f} ({p95 / baseline[kind]:.2f})")
        oracle = name.startswith("oracle")
        busy = "-" if oracle else f"{result.busy_used / max(result.busy_slots, 1):.1%}"
        gap = "-" if oracle else f"{result.max_gap:.1f} s"
        lines.append(
            f"| {name} | {' | '.join(cells)} | {result.requests / (hours * 3600):.2f} "
            f"| {busy} | {gap} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="two simulated hours, not a day")
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args()
    hours = 2.0 if args.quick else 24.0
    for fleet in FLEETS:
        started = time.perf_counter()
        results = run_fleet(fleet, args.seed, hours)
        print(render(fleet, results, hours))
        print(f"\n({time.perf_counter() - started:.0f} s of wall time, seed {args.seed})\n")


if __name__ == "__main__":
    main()
