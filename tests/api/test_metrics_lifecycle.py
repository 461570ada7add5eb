"""/metrics of a running service while a scripted job goes Queued → Running → Complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier.core.status import COMPLETE, QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support.api import ADMIN_TOKEN
from tests.support.running import quick_fakes, running_service

ASID, IVID = 1234, 567890
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class Running:
    clanforge: FakeClanforge
    service: Service
    session: aiohttp.ClientSession

    async def scrape(self) -> Samples:
        assert self.service.http_url is not None
        async with self.session.get(
            self.service.http_url + "metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as response:
            assert response.status == 200
            return parse(await response.text())

    async def scrape_until(self, condition: Callable[[Samples], bool]) -> Samples:
        while True:
            samples = await self.scrape()
            if condition(samples):
                return samples
            await asyncio.sleep(0.05)


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Running]:
    async with quick_fakes((ASID, IVID), QUEUED) as fakes:
        settings = fakes.settings(
            database_url,
            subscription=[
                {
                    "name": "hook",
                    "webhook_url": fakes.receiver.url,
                    "events": ["imageversion.state_changed"],
                }
            ],
        )
        async with running_service(settings) as service:
            yield Running(fakes.clanforge, service, fakes.session)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_as_a_job_runs_to_completion(running: Running) -> None:
    queued = await running.scrape_until(
        lambda s: value(s, "notifier_deliveries_total", sink="webhook", outcome="delivered") >= 1
    )
    assert value(queued, "notifier_transitions_total", state="Queued") == 1
    assert value(queued, "notifier_polls_total", outcome="ok") >= 1
    assert value(queued, "notifier_poll_duration_seconds_count") >= 1
    # Every batch has its four phases timed.
    batches = value(queued, "notifier_poll_batch_seconds_count", phase="claim")
    assert batches >= 1
    for phase in ("fetch", "plan", "write"):
        assert value(queued, "notifier_poll_batch_seconds_count", phase=phase) == batches
    assert value(queued, "notifier_poll_batch_seconds_sum", phase="fetch") > 0
    assert value(queued, "notifier_delivery_latency_seconds_count", sink="webhook") == 1
    assert value(queued, "notifier_active_watches") == 1

    running.clanforge.set_status(ASID, IVID, status_reply(RUNNING, 50))
    mid = await running.scrape_until(
        lambda s: value(s, "notifier_deliveries_total", sink="webhook", outcome="delivered") >= 2
    )
    assert value(mid, "notifier_transitions_total", state="Running") == 1
    assert value(mid, "notifier_polls_total", outcome="ok") > value(
        queued, "notifier_polls_total", outcome="ok"
    )

    running.clanforge.set_status(ASID, IVID, status_reply(COMPLETE, 100))
    # The counter moves as the outcome is written (Sink.sent), the outbox once it is committed.
    done = await running.scrape_until(
        lambda s: (
            value(s, "notifier_deliveries_total", sink="webhook", outcome="delivered") >= 3
            and value(s, "notifier_outbox_depth") == 0
        )
    )
    assert value(done, "notifier_transitions_total", state="Complete") == 1
    assert value(done, "notifier_delivery_latency_seconds_count", sink="webhook") == 3


async def test_failed_polls_are_counted_by_reason(running: Running) -> None:
    running.clanforge.forget(ASID, IVID)
    samples = await running.scrape_until(
        lambda s: value(s, "notifier_polls_total", outcome="not_found") >= 1
    )
    assert value(samples, "notifier_polls_total", outcome="not_found") >= 1
    # Every fetch is timed, whatever its outcome.
    assert value(samples, "notifier_poll_duration_seconds_count") == value(
        samples, "notifier_polls_total", outcome="ok"
    ) + value(samples, "notifier_polls_total", outcome="not_found")
