"""A webhook added through the admin API of a running service, verified by a receiver with the
reference ``standardwebhooks`` library: with the secret the API returned, and across a rotation
(both secrets verify during the overlap, then only the new one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import standardwebhooks

from notifier.core.status import CREATED, PENDING, QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import ReceivedRequest, WebhookReceiver
from tests.support.api import ADMIN_TOKEN
from tests.support.running import quick_fakes, running_service
from tests.support.waiting import eventually

ASID, IVID = 1234, 567890
OVERLAP_SECONDS = 3.0
# The dispatcher keeps its copy of the subscriptions up to a second (SUBSCRIPTIONS_MAX_AGE).
CACHE_SECONDS = 1.2


@dataclass
class Running:
    clanforge: FakeClanforge
    receiver: WebhookReceiver
    service: Service
    session: aiohttp.ClientSession

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.service.http_url is not None
        async with self.session.post(
            self.service.http_url + path.lstrip("/"),
            json=body if body is not None else {},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response:
            assert response.status in (200, 201), await response.text()
            answer: dict[str, Any] = await response.json()
            return answer

    async def first_poll(self) -> None:
        """Until the job's first state is stored: its event predates the test's subscriptions."""
        assert self.service.http_url is not None
        async with asyncio.timeout(10):
            while True:
                async with self.session.get(
                    self.service.http_url + "api/v1/watches",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                ) as response:
                    listing = await response.json()
                if listing["items"] and listing["items"][0]["status"] is not None:
                    return
                await asyncio.sleep(0.02)

    async def next_request(self, state: int, count: int) -> ReceivedRequest:
        """Move the job to ``state`` and wait for the receiver's ``count``-th request."""
        self.clanforge.set_status(ASID, IVID, status_reply(state, 0))
        await eventually(lambda: len(self.receiver.requests) >= count, 10, every=0.02)
        return self.receiver.requests[count - 1]


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Running]:
    async with quick_fakes((ASID, IVID), CREATED) as fakes:
        settings = fakes.settings(
            database_url, delivery={"secret_overlap_seconds": OVERLAP_SECONDS}
        )
        async with running_service(settings) as service:
            ready = Running(fakes.clanforge, fakes.receiver, service, fakes.session)
            await ready.first_poll()
            yield ready


def verifies(secret: str, request: ReceivedRequest) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


async def test_receiver_verifies_with_the_returned_secret_before_during_and_after_a_rotation(
    running: Running,
) -> None:
    created = await running.post(
        "/api/v1/subscriptions",
        {"name": "chatops", "kind": "webhook", "target": running.receiver.url},
    )
    old = created["secret"]

    first = await running.next_request(PENDING, 1)
    assert verifies(old, first)
    assert first.json["data"]["current"]["state"] == "Pending"
    assert len(first.headers["webhook-signature"].split()) == 1

    rotated = await running.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    rotated_at = time.monotonic()
    new = rotated["secret"]
    assert new != old
    await asyncio.sleep(CACHE_SECONDS)

    during = await running.next_request(QUEUED, 2)
    assert time.monotonic() - rotated_at < OVERLAP_SECONDS
    # Two v1 signatures: receivers on either secret verify.
    assert len(during.headers["webhook-signature"].split()) == 2
    assert verifies(old, during)
    assert verifies(new, during)

    await asyncio.sleep(max(0.0, rotated_at + OVERLAP_SECONDS + CACHE_SECONDS - time.monotonic()))
    after = await running.next_request(RUNNING, 3)
    assert verifies(new, after)
    assert not verifies(old, after)
    assert len(after.headers["webhook-signature"].split()) == 1


async def test_an_unsigned_api_webhook_sends_no_signature(running: Running) -> None:
    await running.post(
        "/api/v1/subscriptions",
        {"name": "plain", "kind": "webhook", "target": running.receiver.url, "unsigned": True},
    )
    request = await running.next_request(PENDING, 1)
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"]


async def test_an_api_webhook_with_a_preset_sends_the_presets_body(running: Running) -> None:
    created = await running.post(
        "/api/v1/subscriptions",
        {"name": "discord", "kind": "webhook", "target": running.receiver.url, "preset": "discord"},
    )
    request = await running.next_request(PENDING, 1)
    assert request.json["content"] == "EU: Created → Pending (0%)"
    assert verifies(created["secret"], request)
