"""Where a webhook delivery's cost sits: the send path built up one layer at a time.

The dispatch benchmark compares a drain of the outbox with a bare aiohttp POST loop; this splits
the difference. Each layer sends the same N deliveries' requests to the same receiver,
``concurrency`` at a time:

- the bare loop of :mod:`benchmarks.dispatch`: one body and one set of headers, sent N times;
- our webhook sink POSTing bodies rendered beforehand (:meth:`WebhookSink.post`): the service's
  session, per-request headers, the timestamp and the signature;
- the same sink rendering each body from its event as it sends (the payload and its JSON);
- the dispatcher: :meth:`Service.dispatch_due` over N deliveries in the outbox (the claims,
  the queue, the sends, the outcome writes, the metrics).

Measured by the event-loop thread's CPU per delivery and the whole process's (the SQLite
driver's thread too), alternating, the median of the rounds reported; and by instructions under
callgrind (:mod:`benchmarks.instructions`). The events the sink layers send are the ones a real
tick stored, and the subscription is the benchmark's, secret and all.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlalchemy import select

from benchmarks.dispatch import bare_post, bare_post_session
from benchmarks.harness import (
    WEBHOOK_SECRET,
    Run,
    cpu_by_layer,
    in_workers,
    make_all_due,
    seed_watches,
    service_settings,
    sqlite_url,
    workspace,
)
from benchmarks.servers import STATES
from notifier.notify.webhook import WebhookSink
from notifier.service import Service
from notifier.store.codec import event_from_row
from notifier.store.subscriptions import load_active_subscriptions
from notifier.store.tables import EVENTS

# Bottom to top; each row adds one layer to the one above it.
DISPATCH_LAYERS = (
    "bare aiohttp POST loop",
    "our webhook sink, bodies rendered beforehand",
    "+ each body rendered from its event",
    "the dispatcher (claim, send, record)",
)


@asynccontextmanager
async def dispatch_layer_runs(
    count: int, concurrency: int
) -> AsyncIterator[tuple[dict[str, Run], dict[str, Run]]]:
    """Each layer's run over ``count`` deliveries, by name (:data:`DISPATCH_LAYERS`), and by
    layer what must happen before its run and is not part of it (a tick filling the outbox)."""
    async with workspace(count) as (remote, workdir):
        settings = service_settings(
            sqlite_url(workdir / "dispatch-layers.db"), remote.urls, concurrency=concurrency
        )
        timeout = settings.delivery.timeout_seconds
        async with (
            Service(settings) as service,
            bare_post_session(concurrency) as bare,
            # As the service opens its webhook session.
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        ):
            engine = service.engine
            await seed_watches(engine, count)
            flips = itertools.cycle(STATES[:2])

            async def fill_outbox() -> None:
                await remote.set_state(next(flips))
                await make_all_due(engine)
                summary = await service.tick()
                if summary is None or summary.deliveries != count:
                    raise RuntimeError(f"expected {count} deliveries to send, got {summary}")

            async def drain() -> None:
                sent = await service.dispatch_due()
                if sent != count:
                    raise RuntimeError(f"dispatched {sent} of {count} deliveries")

            await fill_outbox()
            await drain()
            async with engine.connect() as conn:
                rows = await conn.execute(select(EVENTS).order_by(EVENTS.c.seq).limit(count))
                events = [event_from_row(row) for row in rows]
            (subscription,) = await load_active_subscriptions(engine, {"bench": WEBHOOK_SECRET})
            sink = WebhookSink(session, timeout_seconds=timeout)
            bodies = [sink.body(event, subscription) for event in events]
            yield (
                {
                    DISPATCH_LAYERS[0]: lambda: bare_post(
                        remote.urls.webhook, count, concurrency, bare
                    ),
                    DISPATCH_LAYERS[1]: lambda: in_workers(
                        lambda i: sink.post(subscription, events[i].id, bodies[i]),
                        count,
                        concurrency,
                    ),
                    DISPATCH_LAYERS[2]: lambda: in_workers(
                        lambda i: sink.send(events[i], subscription), count, concurrency
                    ),
                    DISPATCH_LAYERS[3]: drain,
                },
                {DISPATCH_LAYERS[3]: fill_outbox},
            )


async def run_dispatch_layers(count: int, *, concurrency: int, rounds: int) -> dict[str, Any]:
    """CPU per delivery of each layer of the send path, ``count`` deliveries a layer."""
    cpu = await cpu_by_layer(dispatch_layer_runs, count, concurrency=concurrency, rounds=rounds)
    return {"deliveries": count, **cpu}
