"""Where an unchanged poll's cost sits: the fetch path built up one layer at a time.

Each layer is a loop of ``concurrency`` workers fetching the same N status URLs from the fake
Clanforge, with the digest of the reply it already knows, as the tick does; the last layer is
the service's tick itself over N due watches. Measured by the event-loop thread's CPU per fetch
(and the whole process's, which adds the SQLite driver thread), the order of the layers
alternating from round to round, the median of the rounds reported.

The difference between two rows is what that layer costs in context, beside real requests:
two to three times what the same code costs in a loop of its own, the HTTP client's code and
data having pushed ours out of the CPU's caches. That is why this is measured here, layer on
layer, and not with a profiler's view of the tick.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from benchmarks.harness import (
    ASID,
    Run,
    cpu_by_layer,
    in_workers,
    make_all_due,
    seed_watches,
    service_settings,
    sqlite_url,
    status_urls,
    workspace,
)
from benchmarks.poll import bare_fetch, bare_session
from benchmarks.servers import STATES
from notifier.clanforge.accounts import open_clanforge_accounts
from notifier.clanforge.client import open_clanforge
from notifier.service import Service

# Bottom to top; each row adds one layer to the one above it.
LAYERS = (
    "bare aiohttp loop",
    "our Clanforge client",
    "+ credential accounts and rate limiter",
    "the service's tick (claim, fetch, schedule)",
)


@asynccontextmanager
async def layer_runs(
    count: int, concurrency: int
) -> AsyncIterator[tuple[dict[str, Run], dict[str, Run]]]:
    """Each layer's run over the same ``count`` fetches, by name (:data:`LAYERS`), and by layer
    what must happen before its run and is not part of it (the tick's watches made due)."""
    async with workspace(count) as (remote, workdir):
        settings = service_settings(
            sqlite_url(workdir / "layers.db"), remote.urls, concurrency=concurrency
        )
        async with (
            Service(settings) as service,
            open_clanforge(settings.clanforge.options()) as client,
            open_clanforge_accounts(settings.clanforge.options()) as accounts,
            bare_session(concurrency, service) as bare,
        ):
            await seed_watches(service.engine, count)
            await remote.set_state(STATES[0])
            await service.tick()  # first sightings: every later reply is known
            ids = range(1, count + 1)
            known = {ivid: (await client.fetch_status(ASID, ivid)).digest for ivid in ids}
            urls = status_urls(remote.urls, count)

            async def tick() -> None:
                summary = await service.tick()
                if summary is None or summary.polled != count or summary.events:
                    raise RuntimeError(f"the tick did not poll {count} quiet watches")

            async def make_due() -> None:
                await make_all_due(service.engine)

            yield (
                {
                    LAYERS[0]: lambda: bare_fetch(bare, urls, concurrency),
                    LAYERS[1]: lambda: in_workers(
                        lambda i: client.fetch_status(ASID, ids[i], known[ids[i]]),
                        count,
                        concurrency,
                    ),
                    LAYERS[2]: lambda: in_workers(
                        lambda i: accounts.fetch_status(ASID, ids[i], known[ids[i]]),
                        count,
                        concurrency,
                    ),
                    LAYERS[3]: tick,
                },
                {LAYERS[3]: make_due},
            )


async def run_layers(count: int, *, concurrency: int, rounds: int) -> dict[str, Any]:
    """CPU per fetch of each layer of the unchanged poll path, ``count`` fetches a layer."""
    cpu = await cpu_by_layer(layer_runs, count, concurrency=concurrency, rounds=rounds)
    return {"fetches": count, **cpu}
