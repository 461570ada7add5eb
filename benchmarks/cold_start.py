"""``python -m benchmarks.cold_start [--minutes M ...] [--seeds N]``: benchmarks.detection's run
on a simulated clock, to see what bounds it.

The same 300 watches and jobs as ``benchmarks.detection`` (its ``make_jobs``, progress moved every
5 s), the same budget (10 requests/s, intervals of 1 s), and a process that starts knowing
nothing: every watch seen once during a warm-up, no wait or run learnt. The policies of
``benchmarks.schedule`` (round-robin over every watch and over the unfinished ones, the
scheduler, and an oracle that knows every change in advance) poll on the simulated clock; the
delay of a change is the first poll that sees it (or a later state) minus the change, pooled
over several seeds because one 4-minute run holds only 15 to 20 failures.

End to end adds what ``notifier run`` takes from a poll to the webhook (a poll's batch is
written when its tick's last fetch is back, then delivered): ``--latency`` adds it to every
policy alike (default 0: the poll's delay alone).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

from benchmarks.detection import FINISHED, FIRST_IVID, RATE, make_jobs
from benchmarks.schedule import (
    KINDS,
    TICK,
    Job,
    Oracle,
    Policy,
    RoundRobin,
    Scheduled,
    percentile,
)
from notifier.core.schedule import SchedulePolicy
from notifier.core.status import TERMINAL_STATES

WARM_UP = (FINISHED + 100) / RATE
"""Every watch's first sighting before the measured run, as benchmarks.detection waits for."""


def replay(
    make_policy: Callable[[list[int], list[Job]], Policy],
    seed: int,
    minutes: float,
    latency: float = 0.0,
) -> dict[str, list[float]]:
    """One policy over one seed's jobs: the delay of each change made during the run."""
    duration = minutes * 60
    jobs = make_jobs(seed, duration)
    finished = list(range(FIRST_IVID, FIRST_IVID + FINISHED))
    policy = make_policy(finished, jobs)
    rng = random.Random(seed)
    for job in jobs:
        policy.add(job, -WARM_UP)
        policy.saw(job.watch_id, -rng.uniform(0, WARM_UP), job)
    by_id = {job.watch_id: job for job in jobs}
    pending = {
        job.watch_id: [(at, kind) for at, kind in job.changes() if 0 <= at < duration]
        for job in jobs
    }
    delays: dict[str, list[float]] = {kind: [] for kind in KINDS}
    step = TICK / RATE
    now = 0.0
    while now < duration + 120:
        chosen, _ = policy.choose(now, RATE)
        for slot, watch_id in enumerate(chosen):
            seen = None if watch_id is None else by_id.get(watch_id)
            if seen is None:
                continue
            t = now + slot * step
            policy.saw(seen.watch_id, t, seen)
            changes = pending[seen.watch_id]
            while changes and changes[0][0] <= t:
                at, kind = changes.pop(0)
                delays["all"].append(t + latency - at)
                if kind in ("complete", "failed"):
                    delays[kind].append(t + latency - at)
                    changes.clear()
            if seen.state_at(t) in TERMINAL_STATES:
                pending[seen.watch_id] = []
        now += TICK
    return delays


def policies(
    schedule: SchedulePolicy,
) -> dict[str, Callable[[list[int], list[Job]], Policy]]:
    return {
        "round-robin, every watch": lambda finished, jobs: RoundRobin(
            finished, skip_finished=False
        ),
        "round-robin, unfinished": lambda finished, jobs: RoundRobin(finished, skip_finished=True),
        "scheduler": lambda finished, jobs: Scheduled(schedule),
        "oracle (knows every change)": lambda finished, jobs: Oracle(jobs, since=0.0),
    }


def table(minutes: float, seeds: int, latency: float, schedule: SchedulePolicy) -> str:
    pooled: dict[str, dict[str, list[float]]] = {}
    for name, make in policies(schedule).items():
        pooled[name] = {kind: [] for kind in KINDS}
        for seed in range(24, 24 + seeds):
            for kind, values in replay(make, seed, minutes, latency).items():
                pooled[name][kind] += values
    baseline = {kind: percentile(pooled["round-robin, every watch"][kind], 0.95) for kind in KINDS}
    counts = ", ".join(f"{len(pooled['scheduler'][kind])} {kind}" for kind in KINDS)
    lines = [
        f"**{minutes:g} min from a cold start**, seeds 24 to {23 + seeds} pooled ({counts}), "
        f"latency added {latency:g} s:",
        "",
        "| policy | all: p50 / p95 s (ratio) | → Complete | → Failed |",
        "|---|---|---|---|",
    ]
    for name, delays in pooled.items():
        cells = []
        for kind in KINDS:
            p95 = percentile(delays[kind], 0.95)
            cells.append(
                f"{percentile(delays[kind], 0.5):.2f} / {p95:.2f} ({p95 / baseline[kind]:.2f})"
            )
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[4.0, 10.0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--failure-weight", type=float, default=SchedulePolicy().failure_weight)
    args = parser.parse_args()
    schedule = SchedulePolicy(failure_weight=args.failure_weight)
    for minutes in args.minutes:
        print(table(minutes, args.seeds, args.latency, schedule))
        print()


if __name__ == "__main__":
    main()
