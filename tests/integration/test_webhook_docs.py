"""The receiver example in docs/webhooks.md, run as written against the service's webhook sink."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.subscriptions import (
    WebhookSubscription,
)
from notifier.notify.samples import sample_event
from notifier.notify.signing import check_request, parse_raw_request
from notifier.notify.webhook import WebhookSink

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WRONG = "whsec_" + "A" * 40
NEW_SECRET = "whsec_QmV0dGVyIGEgbG9uZ2VyIHNlY3JldCB0aGFuIG5vdA=="


def _example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "docs/webhooks.md should have exactly one Python example"
    return str(blocks[0])


@pytest.fixture
async def example_receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The example's Receiver class served on a free loopback port; yields its URL."""
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(_example_code(), str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    server = HTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/clanforge"
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()


async def _send(url: str, secret: str) -> None:
    subscription = WebhookSubscription(id=1, name="docs", url=url, signing_secrets=(secret,))
    async with aiohttp.ClientSession() as session:
        await WebhookSink(session, timeout_seconds=5).deliver(sample_event(), subscription)


async def test_docs_receiver_example_accepts_a_signed_event(
    example_receiver: str, capfd: pytest.CaptureFixture[str]
) -> None:
    await _send(example_receiver, SECRET)

    out = capfd.readouterr().out
    assert "imageversion.failed EU fleet, build 1.4.2 Failed\n" in out


async def test_docs_receiver_example_rejects_a_wrong_signature(
    example_receiver: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DeliveryFailed) as caught:
        await _send(example_receiver, WRONG)

    assert caught.value.permanent
    assert "answered 401" in caught.value.reason
    assert "imageversion.failed" not in capfd.readouterr().out


def test_the_request_shown_in_the_docs_is_really_signed_with_both_rotation_secrets() -> None:
    shown = DOC.read_text(encoding="utf-8").split("```http\n", 1)[1].split("\n```", 1)[0]
    headers, body = parse_raw_request(shown.encode())
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)

    for position, secret in enumerate((SECRET, NEW_SECRET), start=1):
        check = check_request(headers, body, secret, signed_at)
        assert check.ok, check.findings
        assert check.findings[0] == f"signature: matches ({position} of 2 offered)"
    later = check_request(headers, body, SECRET, signed_at + timedelta(hours=1))
    assert not later.ok
    assert "receivers reject more than 5 minutes off" in later.findings[1]
