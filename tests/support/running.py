"""``notifier run`` in the test's own process: the whole service, stopped as SIGTERM stops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from notifier.config import Settings
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.api import make_settings


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    """The service opened and running (poll clock, dispatcher, HTTP server when configured) for
    the block; leaving it stops the service and waits for it to wind down."""
    async with Service(settings) as service:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            yield service
        finally:
            stop.set()
            await task


def quick_service_settings(
    database_url: str, clanforge: FakeClanforge, watch: tuple[int, int, str], **sections: Any
) -> Settings:
    """Settings for a service that polls ``clanforge`` for one ``watch`` (asid, image version,
    label) every 0.1 s and delivers at once to receivers on loopback; ``sections`` adds to them
    (a section given here is merged into the quick one)."""
    asid, image_version_id, label = watch
    quick: dict[str, Any] = {
        "database": {"url": database_url},
        "clanforge": {"base_url": clanforge.base_url, "access_key": "ak", "secret_key": "sk"},
        "poll": {"interval_seconds": 0.1, "running_interval_seconds": 0.1},
        "delivery": {"interval_seconds": 0.1},
        "network": {"allow_private": ["127.0.0.0/8"]},
        "watch": [
            {"account_service_id": asid, "image_version_id": image_version_id, "label": label}
        ],
    }
    for name, value in sections.items():
        base = quick.get(name)
        quick[name] = {**base, **value} if isinstance(base, dict) else value
    return make_settings(**quick)


@dataclass
class QuickFakes:
    """What a quick service talks to, and a client session for the test's own requests."""

    clanforge: FakeClanforge
    receiver: WebhookReceiver
    session: aiohttp.ClientSession
    watch: tuple[int, int]

    def settings(self, database_url: str, **sections: Any) -> Settings:
        """:func:`quick_service_settings` for this Clanforge and watch (labelled "EU")."""
        return quick_service_settings(database_url, self.clanforge, (*self.watch, "EU"), **sections)


@asynccontextmanager
async def quick_fakes(watch: tuple[int, int], state_id: int) -> AsyncIterator[QuickFakes]:
    """Clanforge taking the quick settings' keys and answering ``state_id`` for ``watch``
    (account service, image version), and a webhook receiver."""
    async with (
        FakeClanforge(access_key="ak", secret_key="sk") as clanforge,
        WebhookReceiver() as receiver,
        aiohttp.ClientSession() as session,
    ):
        clanforge.set_status(*watch, status_reply(state_id, 0))
        yield QuickFakes(clanforge, receiver, session, watch)
