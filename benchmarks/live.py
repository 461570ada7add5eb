"""Benchmarks of `notifier run` itself: peak memory; latency from a state flip to the webhook."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import standardwebhooks

from benchmarks.harness import WEBHOOK_SECRET, median, percentile, workspace
from benchmarks.process import notifier_run
from benchmarks.servers import STATES


async def measure_memory(
    count: int, *, concurrency: int, passes: int = 2, limit: float = 600
) -> dict[str, Any]:
    """Peak RSS of `notifier run` while it polls ``count`` watches ``passes`` times.

    The first pass sees every job for the first time (a status row and an event each), later
    passes see nothing new. The subscription wants failures only, so no deliveries are made:
    this measures polling, not the outbox.
    """
    async with workspace(count) as (remote, workdir):
        started = time.perf_counter()
        async with notifier_run(
            workdir,
            remote.urls,
            watches=count,
            concurrency=concurrency,
            interval=1,
            events="imageversion.failed",
        ) as service:
            polls = 0
            while polls < passes * count:
                if service.process.returncode is not None:
                    raise RuntimeError("notifier run exited during the memory benchmark")
                if time.perf_counter() - started > limit:
                    raise RuntimeError(f"only {polls} polls of {passes * count} in {limit} s")
                await asyncio.sleep(0.5)
                polls = await remote.polls()
            peak = service.peak_rss_mb()
            elapsed = time.perf_counter() - started
    return {
        "watches": count,
        "passes": passes,
        "polls": polls,
        "seconds": round(elapsed, 1),
        "peak_rss_mb": round(peak, 1),
    }


async def measure_latency(
    transitions: int, *, watches: int = 10, interval: float = 0.1
) -> dict[str, Any]:
    """Flip one job at a time; time from the poll that saw the flip to the signed webhook.

    The fake records when each status request arrived and the receiver when each webhook did,
    both on the monotonic clock shared by every process. Latency is arrival minus the first
    poll after the flip: the wait for that poll (up to one interval) is the schedule's, not
    the service's, and is reported apart.
    """
    verifier = standardwebhooks.Webhook(WEBHOOK_SECRET)
    latencies: list[float] = []
    waits: list[float] = []
    async with (
        workspace(watches, record=True) as (remote, workdir),
        notifier_run(
            workdir, remote.urls, watches=watches, concurrency=8, interval=interval
        ) as service,
    ):
        # First sightings: one webhook per watch, then a clean slate.
        await _wait_for_arrivals(remote, watches, service)
        await remote.clear()
        state = dict.fromkeys(range(1, watches + 1), STATES[0])
        for index in range(transitions):
            ivid = index % watches + 1
            state[ivid] = STATES[1] if state[ivid] == STATES[0] else STATES[0]
            flipped = await remote.set_state(state[ivid], ivid)
            arrival = await _wait_for_arrivals(remote, 1, service)
            payload = verifier.verify(arrival["body"], arrival["headers"])
            current = payload["data"]["current"]
            if payload["data"]["image_version_id"] != ivid or current["state_id"] != state[ivid]:
                raise RuntimeError(f"unexpected webhook {json.dumps(payload)}")
            polled = await remote.first_poll(ivid, flipped)
            if polled is None:
                raise RuntimeError("the fake recorded no poll after the flip")
            latencies.append(arrival["at"] - polled)
            waits.append(polled - flipped)
            await remote.clear()
    ms = [value * 1000 for value in latencies]
    return {
        "transitions": transitions,
        "poll_interval_seconds": interval,
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
        "median_wait_for_poll_ms": round(median(waits) * 1000, 2),
    }


async def _wait_for_arrivals(remote: Any, count: int, service: Any) -> dict[str, Any]:
    deadline = time.perf_counter() + 30
    while True:
        seen = await remote.arrivals()
        if len(seen["arrivals"]) >= count:
            return dict(seen["arrivals"][-1])
        if service.process.returncode is not None:
            raise RuntimeError("notifier run exited during the latency benchmark")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"waited 30 s for {count} webhook(s), got {len(seen['arrivals'])}")
        await asyncio.sleep(0.005)


async def run_memory(counts: list[int], *, concurrency: int) -> list[dict[str, Any]]:
    return [await measure_memory(count, concurrency=concurrency) for count in counts]
