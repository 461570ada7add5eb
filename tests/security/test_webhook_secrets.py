"""Signing secrets of API webhooks, attacked: what a wrong secret, a caller without the token, a
listing, a receiver echoing our secret and a Slack error echoing the token give away. Nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from notifier.core.secret_scrub import MIN_RUN
from notifier.core.status import CREATED, PENDING
from notifier.logs import QUIET_LOGGERS, quiet_libraries
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import HOOK_METHOD, FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.api import ADMIN_TOKEN, ApiServer
from tests.support.running import quick_fakes, running_service

ASID, IVID = 1234, 567890
SLACK_TOKEN = "xoxb-4711-0815-Q8xY2vN4mZk7Lp3R"
HOOK_SECRET = "hookSecretQ8xY2vN4mZk7Lp3RwT6"  # the credential part of an incoming-webhook URL
HOOK = {"name": "chatops", "kind": "webhook", "target": "https://chatops.example.com/hook"}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged at DEBUG, with the libraries quietened as ``notifier run`` does."""
    before = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    caplog.set_level(logging.DEBUG)
    quiet_libraries(logging.DEBUG)
    try:
        yield caplog
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def pieces(secret: str, text: str) -> list[str]:
    """Every run of MIN_RUN characters of ``secret`` still in ``text``."""
    return [
        secret[i : i + MIN_RUN]
        for i in range(len(secret) - MIN_RUN + 1)
        if secret[i : i + MIN_RUN] in text
    ]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("s3cret-s3cret-s3cret-s3cret", "must be a Standard Webhooks secret of the form whsec_"),
        ("whsec_!!notbase64!!notbase64!!", "is not valid base64 after whsec_"),
        ("whsec_" + base64.b64encode(b"short-key-16byte").decode(), "got 16"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "got 65"),
        ("whsec_" + "A" * 300, "String should have at most 200 characters"),
        (12345678, "Input should be a valid string"),
    ],
)
async def test_a_malformed_secret_is_a_one_line_422_that_does_not_echo_it(
    api: ApiServer, secret: object, problem: str
) -> None:
    status, body = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "secret": secret})
    assert (status, body["error"]["code"]) == (422, "invalid")
    message = body["error"]["message"]
    assert message.startswith("secret: ")
    assert problem in message
    assert "\n" not in message
    assert pieces(str(secret), message) == []
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert listing["items"] == []


async def test_answers_carrying_a_secret_are_not_stored_by_caches(api: ApiServer) -> None:
    async with api.session.post(
        api.url + "api/v1/subscriptions",
        json=HOOK,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as response:
        assert response.status == 201
        assert response.headers["Cache-Control"] == "no-store"
        created = await response.json()
    async with api.session.post(
        api.url + f"api/v1/subscriptions/{created['id']}/rotate-secret",
        json={},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"


async def test_a_secret_and_unsigned_together_are_refused(api: ApiServer) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    status, body = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "secret": secret, "unsigned": True}
    )
    assert (status, body["error"]["message"]) == (
        422,
        "body: give secret or unsigned: true, not both",
    )


@pytest.mark.parametrize(
    ("token", "headers", "status"),
    [
        (None, {}, 401),
        ("guess-guess", {}, 401),
        (ADMIN_TOKEN, {"Content-Type": "text/plain"}, 415),
        (ADMIN_TOKEN, {"Origin": "https://evil.example"}, 403),
    ],
)
async def test_rotation_without_the_token_or_from_a_page_changes_nothing_and_shows_nothing(
    api: ApiServer, token: str | None, headers: dict[str, str], status: int
) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    answer, body = await api.call(
        "POST",
        f"/api/v1/subscriptions/{created['id']}/rotate-secret",
        token=token,
        headers=headers,
        data=b"{}",
    )
    assert answer == status
    assert "whsec_" not in json.dumps(body)
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert [s["previous_secret_until"] for s in listing["items"]] == [None]


async def test_the_secret_is_in_no_listing_page_or_log_line(
    api: ApiServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    _, rotated = await api.call("POST", f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    shown = [
        json.dumps((await api.call("GET", "/api/v1/subscriptions"))[1]),
        (await api.call("GET", "/"))[1],
        json.dumps((await api.call("GET", "/api/v1/openapi.json"))[1]),
        debug_logs.text,
    ]
    assert "subscription 'chatops' added (signed)" in debug_logs.text
    for secret in (created["secret"], rotated["secret"]):
        for text in shown:
            assert pieces(secret.removeprefix("whsec_"), text) == []


# ---------------------------------------------------------------- echoing receivers


@dataclass
class Running:
    clanforge: FakeClanforge
    receiver: WebhookReceiver
    slack: FakeSlack
    service: Service
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.service.http_url is not None
        async with self.session.request(
            method,
            self.service.http_url + path.lstrip("/"),
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response:
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Running]:
    async with quick_fakes((ASID, IVID), CREATED) as fakes, FakeSlack(token=SLACK_TOKEN) as slack:
        settings = fakes.settings(
            database_url,
            slack={
                "bot_token": SLACK_TOKEN,
                "base_url": slack.base_url,
                "channel_interval_seconds": 0,
            },
            subscription=[
                {"name": "builds", "slack_channel": "C0123456789"},
                {"name": "hook", "slack_webhook_url": slack.webhook_url(f"T1/B1/{HOOK_SECRET}")},
            ],
        )
        async with running_service(settings) as service:
            yield Running(fakes.clanforge, fakes.receiver, slack, service, fakes.session)


async def test_receivers_and_slack_echoing_our_secrets_leave_no_piece_in_errors_pages_or_logs(
    running: Running, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with asyncio.timeout(10):
        while True:  # until the first state reached Slack: all is set up
            if running.slack.posts():
                break
            await asyncio.sleep(0.02)
    created = await running.call(
        "POST",
        "/api/v1/subscriptions",
        {"name": "echo", "kind": "webhook", "target": running.receiver.url},
    )
    secret = created["secret"]
    # Each echo starts late in the text, where a cut to length before the scrub would leave a
    # piece of the secret standing.
    running.receiver.respond_next(
        400, body=("x" * 150 + f" expected signature with {secret}, your key").encode()
    )
    running.slack.fail_next("chat.postMessage", error=f"invalid_auth {'y' * 80} {SLACK_TOKEN}")
    running.slack.fail_next("chat.update", error=f"invalid_auth {'y' * 80} {SLACK_TOKEN}")
    running.slack.fail_next(
        HOOK_METHOD, error=f"{'z' * 80} no_service T1/B1/{HOOK_SECRET}", status=404
    )
    running.clanforge.set_status(ASID, IVID, status_reply(PENDING, 0))

    async with asyncio.timeout(10):
        while True:
            dead = (await running.call("GET", "/api/v1/deliveries?status=dead"))["items"]
            if {d["subscription"] for d in dead} >= {"echo", "builds", "hook"}:
                break
            await asyncio.sleep(0.05)

    errors = {d["subscription"]: d["last_error"] for d in dead}
    assert "answered 400: xxx" in errors["echo"]
    assert errors["builds"].startswith("Slack says invalid_auth")
    assert "incoming-webhook URL of 'hook' no longer works" in errors["hook"]
    shown = [json.dumps(dead), await running.call("GET", "/"), debug_logs.text]
    for text in shown:
        assert pieces(secret.removeprefix("whsec_"), text) == []
        assert pieces(SLACK_TOKEN, text) == []
        assert pieces(HOOK_SECRET, text) == []
