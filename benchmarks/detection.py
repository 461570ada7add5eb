"""``python -m benchmarks.detection [--minutes M] [--seed N] [--out PATH]``: detection delay end to
end, ``notifier run`` against a Clanforge stand-in whose jobs change on the wall clock.

Issue 24's measure, as a user meets it: 300 watches, of which 200 jobs finished before the run
and 100 live through it (Created, Queued or Running at its start, moving on at moments drawn from
a seeded generator), ``requests_per_second = 10``, poll intervals of 1 s, so far more is due than
the budget polls. The detection delay of a change is the arrival of the first signed webhook
showing that state (or a later one) minus the moment the stand-in started answering with it.

Against exact round-robin over every watch at the same budget, simulated on the same changes:
each watch polled once every ``watches / requests_per_second`` seconds at a phase of its own
(the p95 is the mean over 50 seeded orders). Also printed: requests per second the stand-in
received while more was due (always, here), and changes seen by no webhook by the end.

Not part of the test suite: a run takes the minutes asked for, plus a warm-up (every watch's first
sighting) and a tail of 60 s in which nothing changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import standardwebhooks
import tomli_w

from benchmarks.harness import WEBHOOK_SECRET, percentile
from benchmarks.process import running
from benchmarks.schedule import KINDS, Job
from notifier.core.status import COMPLETE, CREATED, FAILED, QUEUED, RUNNING
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import WebhookReceiver

ASID = 2400
ACCESS_KEY, SECRET_KEY = "ak-detection", "sk-detection"
FIRST_IVID = 240_000
FINISHED = 200
LIVE = 100
RATE = 10
TAIL_SECONDS = 60.0
PROGRESS_EVERY = 5.0
ORDERS = 50
# How far along the life cycle a state is: a webhook showing a later state shows the change too.
_RANK = {CREATED: 0, QUEUED: 1, RUNNING: 2, COMPLETE: 3, FAILED: 3}


def make_jobs(seed: int, duration: float) -> list[Job]:
    """100 live jobs: a tenth Created, three tenths Queued, the rest Running at t0; each job's
    moments in seconds from t0 (negative: before it), its id the image version's."""
    rng = random.Random(seed)
    jobs = []
    for n in range(LIVE):
        ivid = FIRST_IVID + FINISHED + n
        if n < LIVE // 10:
            queued = rng.expovariate(1 / 60)
            running = queued + rng.lognormvariate(math.log(90), 0.8)
        elif n < 4 * LIVE // 10:
            queued = -rng.uniform(10, 300)
            running = rng.lognormvariate(math.log(60), 1.0)
        else:
            queued = -rng.uniform(400, 900)
            running = -rng.uniform(5, 600)
        if running < 0:
            planned = (-running) + rng.uniform(5, 1.3 * duration)
        else:
            planned = rng.lognormvariate(math.log(180), 0.5)
        eta = running + planned * (1 + rng.uniform(-0.2, 0.2))
        failed = rng.random() < 0.2
        end = running + planned * (rng.uniform(0.1, 0.95) if failed else 1.0)
        if end <= 0:
            end = rng.uniform(1, duration)
        # Progress at an even speed, moved every PROGRESS_EVERY seconds (see drive): the
        # simulation's job, with the run's moments from t0.
        created = min(queued, 0) - 60
        jobs.append(
            Job(ivid, ASID, created, queued, running, end, failed, eta, (1.0,), PROGRESS_EVERY)
        )
    return jobs


def reply(job: Job, t: float, epoch: float) -> dict[str, object]:
    state = job.state_at(t)
    return status_reply(
        state,
        job.progress_at(t),
        eta=int(epoch + job.eta) if state >= RUNNING else None,
        error="Image build failed" if state == FAILED else None,
        start=int(epoch + job.running) if state >= RUNNING else "",
        created=int(epoch + job.created),
        updated=int(epoch + job.updated_at(t)),
    )


def config_text(database: Path, clanforge: FakeClanforge, hooks: WebhookReceiver) -> str:
    text: str = tomli_w.dumps(
        {
            "database": {"url": f"sqlite+aiosqlite:///{database}"},
            "clanforge": {
                "base_url": clanforge.base_url,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "requests_per_second": RATE,
            },
            "poll": {"interval_seconds": 1, "running_interval_seconds": 1},
            "network": {"allow_private": ["127.0.0.0/8"]},
            "delivery": {"interval_seconds": 0.2},
            "subscription": [
                {
                    "name": "detection",
                    "webhook_url": hooks.url,
                    "webhook_secret": WEBHOOK_SECRET,
                    "events": ["imageversion.state_changed"],
                }
            ],
            "watch": [
                {"account_service_id": ASID, "image_version_id": ivid}
                for ivid in range(FIRST_IVID, FIRST_IVID + FINISHED + LIVE)
            ],
        }
    )
    return text


@dataclass(frozen=True, slots=True)
class Change:
    ivid: int
    state: int
    at: float
    """Monotonic moment the stand-in began answering with it."""


async def drive(
    clanforge: FakeClanforge,
    jobs: list[Job],
    t0: float,
    epoch: float,
    duration: float,
    hooks: WebhookReceiver,
) -> list[Change]:
    """Make each change at its moment (and move progress every few seconds); check the
    signature of every webhook come meanwhile while its timestamp is fresh."""
    verifier = standardwebhooks.Webhook(WEBHOOK_SECRET)
    checked = 0
    moments: list[tuple[float, int, Job]] = []
    for job in jobs:
        for moment in (job.queued, job.running, job.end):
            if 0 <= moment < duration:
                moments.append((moment, 0, job))
        tick = PROGRESS_EVERY
        while tick < duration:
            if job.running <= tick < job.end:
                moments.append((tick, 1, job))
            tick += PROGRESS_EVERY
    moments.sort(key=lambda item: (item[0], item[1]))
    changes = []
    for moment, progress_only, job in moments:
        delay = t0 + moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        clanforge.set_status(ASID, job.watch_id, reply(job, moment, epoch))
        for request in hooks.requests[checked:]:
            verifier.verify(request.body, request.headers)
        checked = len(hooks.requests)
        if not progress_only:
            changes.append(Change(job.watch_id, job.state_at(moment), time.monotonic()))
    return changes


def detections(changes: list[Change], hooks: WebhookReceiver) -> dict[str, list[float]]:
    seen: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for request in hooks.requests:
        # Verified as it arrived (see measure): minutes later the timestamps are too old to.
        data = request.json["data"]
        seen[data["image_version_id"]].append((request.at, data["current"]["state_id"]))
    delays: dict[str, list[float]] = {kind: [] for kind in (*KINDS, "missed")}
    for change in changes:
        first = next(
            (
                at
                for at, state in sorted(seen[change.ivid])
                if at >= change.at and _RANK[state] >= _RANK[change.state]
            ),
            None,
        )
        if first is None:
            delays["missed"].append(change.at)
            continue
        for kind in _kinds(change.state):
            delays[kind].append(first - change.at)
    return delays


def round_robin(changes: list[Change], t0: float, seed: int) -> dict[str, float]:
    """p95 per kind of exact round-robin over every watch at the budget, mean of ORDERS orders."""
    watches = FINISHED + LIVE
    cycle = watches / RATE
    sums = dict.fromkeys(KINDS, 0.0)
    rng = random.Random(seed)
    ids = list(range(FIRST_IVID, FIRST_IVID + watches))
    for _ in range(ORDERS):
        rng.shuffle(ids)
        phase = rng.uniform(0, cycle)
        position = {ivid: n for n, ivid in enumerate(ids)}
        delays: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for change in changes:
            first_poll = phase + position[change.ivid] / RATE
            delay = (first_poll - (change.at - t0)) % cycle
            for kind in _kinds(change.state):
                delays[kind].append(delay)
        for kind in KINDS:
            sums[kind] += percentile(delays[kind], 0.95)
    return {kind: sums[kind] / ORDERS for kind in KINDS}


def _kinds(state: int) -> tuple[str, ...]:
    if state == COMPLETE:
        return ("all", "complete")
    if state == FAILED:
        return ("all", "failed")
    return ("all",)


async def measure(minutes: float, seed: int, workdir: Path) -> dict[str, Any]:
    duration = minutes * 60
    jobs = make_jobs(seed, duration)
    async with (
        FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
        WebhookReceiver() as hooks,
    ):
        # t0 on the wall clock, guessed for the warm-up's replies and set right at t0.
        epoch = time.time() + (FINISHED + LIVE) / RATE
        for n in range(FINISHED):
            done = epoch - 3600 * (2 + n % 46)
            clanforge.set_status(
                ASID,
                FIRST_IVID + n,
                status_reply(COMPLETE, 100, start=int(done - 900), updated=int(done)),
            )
        for job in jobs:
            clanforge.set_status(ASID, job.watch_id, reply(job, 0.0, epoch))
        config = workdir / "notifier.toml"
        config.write_text(config_text(workdir / "detection.db", clanforge, hooks))
        async with running(config, workdir / "notifier-run.log") as service:
            # Warm-up: every watch's first sighting, so the run starts from known statuses.
            deadline = time.monotonic() + 120
            while len(hooks.requests) < FINISHED + LIVE and time.monotonic() < deadline:
                if service.process.returncode is not None:
                    raise RuntimeError("notifier run exited during the warm-up")
                await asyncio.sleep(0.5)
            hooks.requests.clear()
            t0 = time.monotonic()
            epoch = time.time()
            for job in jobs:
                clanforge.set_status(ASID, job.watch_id, reply(job, 0.0, epoch))
            requests_before = len(clanforge.requests)
            changes = await drive(clanforge, jobs, t0, epoch, duration, hooks)
            await asyncio.sleep(max(0.0, t0 + duration - time.monotonic()))
            during = [r for r in clanforge.requests[requests_before:] if r.time < t0 + duration]
            await asyncio.sleep(TAIL_SECONDS)
            tail = standardwebhooks.Webhook(WEBHOOK_SECRET)
            for request in hooks.requests:
                if request.at >= t0 + duration:  # the drive checked those before
                    tail.verify(request.body, request.headers)
        delays = detections(changes, hooks)
    baseline = round_robin(changes, t0, seed)
    rows = {}
    for kind in KINDS:
        p95 = percentile(delays[kind], 0.95)
        rows[kind] = {
            "changes": len(delays[kind]),
            "p50_s": round(percentile(delays[kind], 0.5), 2),
            "p95_s": round(p95, 2),
            "round_robin_p95_s": round(baseline[kind], 2),
            "ratio": round(p95 / baseline[kind], 2),
        }
    return {
        "minutes": minutes,
        "seed": seed,
        "watches": FINISHED + LIVE,
        "requests_per_second_configured": RATE,
        "requests_per_second_used": round(len(during) / duration, 2),
        "missed": len(delays["missed"]),
        "kinds": rows,
    }


def table(result: dict[str, Any]) -> str:
    names = {"all": "all changes", "complete": "→ Complete", "failed": "→ Failed"}
    lines = [
        "| | p95 delay (p50) | ratio to round-robin |",
        "|---|---|---|",
    ]
    for kind in KINDS:
        row = result["kinds"][kind]
        lines.append(
            f"| {names[kind]} ({row['changes']}) | {row['p95_s']:.1f} s ({row['p50_s']:.1f} s; "
            f"round-robin {row['round_robin_p95_s']:.1f} s) | {row['ratio']:.2f} |"
        )
    lines.append(
        f"| budget used while more was due | {result['requests_per_second_used']:.1f} of "
        f"{result['requests_per_second_configured']} requests/s | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="measured run (default 5)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="detection-") as workdir:
        result = asyncio.run(measure(args.minutes, args.seed, Path(workdir)))
    print(
        f"notifier run, {result['watches']} watches ({FINISHED} finished before the run, {LIVE} "
        f"live), {RATE} requests/s, intervals 1 s, {result['minutes']:g} min, seed "
        f"{result['seed']}; {result['missed']} change(s) seen by no webhook by the end"
    )
    print(table(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
