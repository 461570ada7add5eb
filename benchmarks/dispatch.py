"""Dispatch throughput: the outbox drained to the local receiver, against a bare POST loop.

Each repetition the service's real tick fills the outbox (every job flips state: one event and
one delivery per watch; not timed), then :meth:`notifier.service.Service.dispatch_due` sends them
all: claim, sign, POST, record the outcome. The bare loop POSTs the same number of bodies of the
same size to the same receiver at the same concurrency over one session, and nothing else.
Alternating, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from benchmarks.harness import (
    ASID,
    Remote,
    fresh_database,
    make_all_due,
    median,
    seed_watches,
    service_settings,
    workspace,
)
from benchmarks.servers import STATES
from notifier.service import Service

# Shaped as the contract's example payload; about the size of what the service sends.
_SAMPLE_PAYLOAD: dict[str, Any] = {
    "type": "imageversion.state_changed",
    "timestamp": "2026-11-28T17:04:05Z",
    "data": {
        "account_service_id": ASID,
        "image_version_id": 10000,
        "label": "bench 10000",
        "previous": {"state_id": 3, "state": "Queued", "progress": 0},
        "current": {
            "state_id": 4,
            "state": "Running",
            "progress": 50,
            "error": None,
            "eta": None,
            "failed_count": 0,
            "updated": "2026-11-28T17:04:01Z",
        },
    },
}


async def bare_post(url: str, count: int, concurrency: int, session: aiohttp.ClientSession) -> None:
    body = json.dumps(_SAMPLE_PAYLOAD, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": "evt_01JDEMO0000000000000000000",
        "webhook-timestamp": "1795000000",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    }
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            async with session.post(url, data=body, headers=headers) as response:
                if response.status >= 300:
                    raise RuntimeError(f"bare POST got {response.status}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def bare_post_session(concurrency: int) -> aiohttp.ClientSession:
    """The bare loop's session: one connection per send slot, nothing else configured."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    return aiohttp.ClientSession(connector=connector)


async def measure_dispatch(
    remote: Remote, count: int, *, concurrency: int, repetitions: int, database_url: str
) -> dict[str, Any]:
    settings = service_settings(database_url, remote.urls, concurrency=concurrency)
    bare_times: list[float] = []
    service_times: list[float] = []
    # CPU per request in microseconds: (event loop thread, whole process with its threads).
    bare_cpu: list[tuple[float, float]] = []
    service_cpu: list[tuple[float, float]] = []
    async with Service(settings) as service:
        await seed_watches(service.engine, count)
        async with bare_post_session(concurrency) as session:
            # Warm up: first sightings become deliveries too; send them and a bare round.
            await remote.set_state(STATES[0])
            await service.tick()
            await service.dispatch_due()
            await bare_post(remote.urls.webhook, count, concurrency, session)
            for rep in range(repetitions):
                await remote.set_state(STATES[(rep + 1) % 2])
                await make_all_due(service.engine)
                summary = await service.tick()
                if summary is None or summary.deliveries != count:
                    raise RuntimeError(f"expected {count} deliveries to send, got {summary}")
                await remote.clear()
                order = ("bare", "service") if rep % 2 == 0 else ("service", "bare")
                for side in order:
                    started = time.perf_counter()
                    cpu = time.thread_time(), time.process_time()
                    if side == "bare":
                        await bare_post(remote.urls.webhook, count, concurrency, session)
                        bare_times.append(time.perf_counter() - started)
                        bare_cpu.append(_cpu_since(cpu, count))
                    else:
                        sent = await service.dispatch_due()
                        service_times.append(time.perf_counter() - started)
                        service_cpu.append(_cpu_since(cpu, count))
                        if sent != count:
                            raise RuntimeError(f"dispatched {sent} of {count} deliveries")
                received = (await remote.arrivals())["received"]
                if received != 2 * count:
                    raise RuntimeError(f"the receiver got {received} requests, not {2 * count}")
    ratios = [s / b for s, b in zip(service_times, bare_times, strict=True)]
    return {
        "deliveries": count,
        "concurrency": concurrency,
        "bare_seconds": [round(t, 4) for t in bare_times],
        "service_seconds": [round(t, 4) for t in service_times],
        "bare_per_second": round(count / median(bare_times), 1),
        "service_per_second": round(count / median(service_times), 1),
        "ratio": round(median(ratios), 3),
        # Less at the mercy of the machine's other load than the wall-clock ratio: the CPU each
        # side's event loop thread (and the whole process, the SQLite driver thread included)
        # spent per request, medians over the repetitions.
        "bare_loop_cpu_us": round(median([c[0] for c in bare_cpu]), 1),
        "service_loop_cpu_us": round(median([c[0] for c in service_cpu]), 1),
        "bare_process_cpu_us": round(median([c[1] for c in bare_cpu]), 1),
        "service_process_cpu_us": round(median([c[1] for c in service_cpu]), 1),
    }


def _cpu_since(start: tuple[float, float], count: int) -> tuple[float, float]:
    thread, process = start
    return (
        (time.thread_time() - thread) * 1e6 / count,
        (time.process_time() - process) * 1e6 / count,
    )


async def run_dispatch(
    count: int, *, concurrency: int, repetitions: int, postgres: str | None = None
) -> dict[str, Any]:
    """Dispatch throughput, on SQLite, or on the PostgreSQL server ``postgres`` names."""
    async with (
        workspace(count) as (remote, workdir),
        fresh_database(workdir, f"dispatch-{count}", postgres) as database_url,
    ):
        return await measure_dispatch(
            remote,
            count,
            concurrency=concurrency,
            repetitions=repetitions,
            database_url=database_url,
        )
