"""A bound budget in the logs: ticks that overrun are said once and counted, not warned each."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from notifier.core.status import QUEUED
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, FakeReply, status_reply
from tests.conftest import make_settings

ASID, IVID = 1234, 567890
SLOW_SECONDS = 0.6
OVERRUNNING = "poll ticks overrun their interval"
KEEPING_UP = "poll ticks keep to their interval again"


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


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
                await wait_for(lambda: service.overruns.skipped >= 10)
                assert service.overruns.binding
                clanforge.set_status(ASID, IVID, status_reply(QUEUED, 0))
                await wait_for(lambda: not service.overruns.binding)
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
