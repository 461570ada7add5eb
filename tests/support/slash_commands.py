"""``/imagewatch`` as Slack sends it: a bare aiohttp app with the command route, and requests
signed the way Slack signs them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.signature import Clock
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.slack_commands import PATH, register
from notifier.config import Settings
from notifier.core.clock import utc_now
from tests.support.clock import HandClock
from tests.support.slack_signing import slack_signed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0BUILDS"
_TRIGGERS = itertools.count()

Client = TestClient[Any, Any]


@dataclass(frozen=True)
class CommandDeps:
    """The fields of the API's shared dependencies that the handler uses."""

    engine: AsyncEngine
    settings: Settings
    clock: Callable[[], datetime] = utc_now


def command_settings(signing_secret: str | None = SECRET) -> Settings:
    """Settings that let ``/imagewatch`` watch account services 1234 and 999 (issue 22: only
    the ones the operator allows)."""
    slack: dict[str, Any] = {"command_account_services": [1234, 999]}
    if signing_secret is not None:
        slack["signing_secret"] = signing_secret
    return Settings.model_validate(
        {"clanforge": {"access_key": "a", "secret_key": "s"}, "slack": slack}
    )


@asynccontextmanager
async def command_client(
    engine: AsyncEngine, settings: Settings, *, verifier_clock: Clock | None = None
) -> AsyncIterator[Client]:
    """A client of the command route alone, over the real store."""
    app = web.Application()
    if verifier_clock is None:
        register(app, CommandDeps(engine, settings))
    else:
        register(app, CommandDeps(engine, settings), verifier_clock=verifier_clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as running:
        yield running


def signed(
    text: str, *, channel: str = CHANNEL, secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``/imagewatch TEXT`` typed in ``channel`` at ``at`` (now)."""
    form = {
        "command": "/imagewatch",
        "text": text,
        "channel_id": channel,
        "user_id": "U0PERSON",
        "team_id": "T0TEAM",
        # Slack's own, different in every request: two commands in one second are two
        # requests, not a replay.
        "trigger_id": f"trigger-{next(_TRIGGERS)}",
    }
    return slack_signed(form, secret, at)


async def answer(client: Client, text: str, **signing: Any) -> dict[str, Any]:
    """What Slack shows the person who typed ``/imagewatch TEXT``: the JSON of a 200 answer."""
    body, headers = signed(text, **signing)
    response = await client.post(PATH, data=body, headers=headers)
    assert response.status == 200
    reply: dict[str, Any] = await response.json()
    return reply


@pytest.fixture
def clock() -> HandClock:
    """The signature verifier's clock, moved by hand from the wall clock's now."""
    return HandClock(utc_now())


@pytest.fixture
async def client(engine: AsyncEngine, clock: HandClock) -> AsyncIterator[Client]:
    """The command route with a signing secret, its verifier on the hand ``clock``."""
    verifier_clock = clock.signature_clock()
    async with command_client(engine, command_settings(), verifier_clock=verifier_clock) as running:
        yield running


async def command(client: Client, text: str, **signing: Any) -> str:
    """The text Slack shows only the person who typed ``/imagewatch TEXT``."""
    reply = await answer(client, text, **signing)
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])
