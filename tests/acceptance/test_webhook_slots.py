"""A receiver that never answers cannot hold the service's only sending slot past the timeout:
the real service, one delivery slot, a hung receiver first in line and a healthy one after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from notifier.config import Settings
from notifier.core.clock import utc_now
from notifier.core.status import FAILED, RUNNING
from notifier.service import Service
from notifier.store.outbox import list_deliveries
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import WebhookReceiver

ACCESS_KEY, SECRET_KEY = "ak-slots", "sk-slots"


async def test_a_hung_receiver_gives_the_only_slot_back_at_the_timeout(tmp_path: Path) -> None:
    started = utc_now().replace(microsecond=0)
    async with (
        FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
        WebhookReceiver() as hung,
        WebhookReceiver() as healthy,
    ):
        hung.respond_next(204, delay=3600)  # never answers (until the receiver closes)
        clanforge.script(
            1234,
            567890,
            [
                status_reply(RUNNING, 50, created=started, start=started),
                status_reply(FAILED, 50, created=started, start=started, error="boom", failed=1),
            ],
        )
        settings = Settings.model_validate(
            {
                "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'slots.db'}"},
                "clanforge": {
                    "base_url": clanforge.base_url,
                    "access_key": ACCESS_KEY,
                    "secret_key": SECRET_KEY,
                },
                "poll": {"interval_seconds": 0.1, "running_interval_seconds": 0.1},
                "delivery": {"timeout_seconds": 0.3, "max_concurrency": 1, "interval_seconds": 0.1},
                "network": {"allow_private": ["127.0.0.0/8"]},
                "watch": [{"account_service_id": 1234, "image_version_id": 567890}],
                "subscription": [
                    # Created first, so its deliveries are first in line for the one slot.
                    {"name": "hung", "webhook_url": hung.url, "events": ["imageversion.failed"]},
                    {
                        "name": "healthy",
                        "webhook_url": healthy.url,
                        "events": ["imageversion.failed"],
                    },
                ],
            }
        )
        stop = asyncio.Event()
        async with Service(settings) as service:
            running = asyncio.create_task(service.run(stop))
            while True:
                await asyncio.sleep(0.05)
                by_name = {d.subscription: d for d in await list_deliveries(service.engine)}
                hung_tried = by_name.get("hung") is not None and by_name["hung"].attempts >= 1
                if hung_tried and healthy.requests:
                    break
            stop.set()
            await running  # lets the send under way finish and be recorded
            by_name = {d.subscription: d for d in await list_deliveries(service.engine)}

    assert [r.json["type"] for r in healthy.requests] == ["imageversion.failed"]
    assert by_name["healthy"].status == "delivered"
    hung_delivery = by_name["hung"]
    assert hung_delivery.status == "pending"  # retried later, not lost
    assert hung_delivery.last_error is not None
    assert hung_delivery.last_error.endswith("did not answer within 0.3 s")
    assert len(hung.requests) == 1
    # The hung receiver had the slot first: the healthy one was only served once it gave it back.
    assert healthy.requests[0].at > hung.requests[0].at
