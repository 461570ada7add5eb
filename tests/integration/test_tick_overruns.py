"""A bound budget in the logs: ticks that overrun are said once and counted, not warned each."""

from __future__ import annotations

import asyncio
import logging

import pytest

from notifier.core.status import QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, FakeReply, status_reply
from tests.support.api import make_settings
from tests.support.waiting import eventually

ASID, IVID = 1234, 567890
SLOW_SECONDS = 0.6
OVERRUNNING = "poll ticks overrun their interval"
KEEPING_UP = "poll ticks keep to their interval again"


async def test_overrunning_ticks_log_once_and_are_counted(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    slow = FakeReply.json(200, status_reply(QUEUED, 0))
    slow = FakeReply(slow.status, slow.body, slow.headers, delay=SLOW_SECONDS)
    async with FakeClanforge(access_key="ak", secret_key="sk") as clanforge:
        clanforge.set_status(ASID, IVID, slow)
        settings = make_settings(
            database={"url": database_url},
            clanforge={"base_url": clanforge.base_url, "access_key": "ak", "secret_key": "sk"},
            # Every answer takes six tick intervals: each tick overruns into the next five.
            poll={"interval_seconds": 0.1, "running_interval_seconds": 0.1},
            watch=[{"account_service_id": ASID, "image_version_id": IVID, "label": "EU"}],
            server=None,
        )
        async with Service(settings) as service:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            try:
                await eventually(lambda: service.overruns.skipped >= 10)
                assert service.overruns.binding
                clanforge.set_status(ASID, IVID, status_reply(QUEUED, 0))
                await eventually(lambda: not service.overruns.binding)
            finally:
                stop.set()
                await task
            skipped = service.metrics.render().decode()
    assert service.overruns.skipped >= 10
    assert f"notifier_poll_ticks_skipped_total {float(service.overruns.skipped)}" in skipped
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "maximum number of running instances" in m]
    assert sum(OVERRUNNING in m for m in messages) == 1
    assert sum(KEEPING_UP in m for m in messages) == 1


async def test_while_the_budget_binds_the_ticks_spend_the_whole_budget(
    sqlite_url: str,
) -> None:
    rate = 10
    async with FakeClanforge(access_key="ak", secret_key="sk") as clanforge:
        watches = range(600_000, 600_040)
        for ivid in watches:
            clanforge.set_status(ASID, ivid, status_reply(RUNNING, 50))
        settings = make_settings(
            database={"url": sqlite_url},
            clanforge={
                "base_url": clanforge.base_url,
                "access_key": "ak",
                "secret_key": "sk",
                "requests_per_second": rate,
            },
            # 40 jobs Running, each due every second: four times what the budget polls.
            poll={"interval_seconds": 1, "running_interval_seconds": 1},
            watch=[{"account_service_id": ASID, "image_version_id": ivid} for ivid in watches],
            server=None,
        )
        async with Service(settings) as service:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            try:
                await eventually(lambda: len(clanforge.requests) >= 5)
                await asyncio.sleep(5)
            finally:
                stop.set()
                await task
    times = [request.time for request in clanforge.requests]
    steady = [t for t in times if t >= times[0] + 1]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    # A tick that overran into the next one's moment used to leave a whole second without a
    # request (7.4 of 10 a second); now the next tick starts at once.
    assert achieved >= 0.9 * rate, (achieved, service.overruns.skipped)
