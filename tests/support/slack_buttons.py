"""Clicks on the live message's buttons, signed the way Slack signs them, against a bare app
with ``POST /slack/interactions`` and the real store; answers go to a fake Slack."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.slack_interactions import PATH, register
from notifier.config import Settings
from notifier.core.clock import utc_now
from notifier.core.live_messages import LiveMessage, LiveMessageKey
from notifier.core.subscriptions import SlackChannelSubscription
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.subscriptions import follow_in_channel
from notifier.store.tables import SubscriptionRow
from notifier.store.watches import add_watch
from notifier.testing.fake_slack import FAKE_TOKEN, FakeSlack
from tests.conftest import seed_subscription
from tests.support.dispatch import fake_slack_client
from tests.support.slack_signing import slack_signed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0BUILDS"
ASID = 1234
IVID = 567890
_CLICKS = itertools.count()

Client = TestClient[Any, Any]


@dataclass
class ButtonDeps:
    """The fields of the API's shared dependencies the buttons use."""

    engine: AsyncEngine
    settings: Settings
    slack: AsyncWebClient | None
    clock: Callable[[], datetime] = utc_now
    wakes: list[int] = field(default_factory=list)

    def wake_dispatcher(self) -> None:
        self.wakes.append(1)


def button_settings(**slack: Any) -> Settings:
    return Settings.model_validate(
        {
            "clanforge": {"access_key": "a", "secret_key": "s"},
            "slack": {"signing_secret": SECRET, "bot_token": FAKE_TOKEN, **slack},
        }
    )


@asynccontextmanager
async def button_app(
    engine: AsyncEngine, settings: Settings
) -> AsyncIterator[tuple[Client, FakeSlack]]:
    """The app, and the fake Slack that receives its ephemeral answers."""
    async with FakeSlack() as slack, aiohttp.ClientSession() as session:
        client = fake_slack_client(slack, session)
        app = web.Application()
        register(app, ButtonDeps(engine, settings, client))
        async with TestClient(TestServer(app, host="127.0.0.1")) as running:
            yield running, slack


async def live_message_in_channel(
    engine: AsyncEngine, channel: str = CHANNEL, *, followed: bool = True
) -> None:
    """A watch whose live message the channel shows, followed there through /imagewatch (or,
    with ``followed=False``, sent there by a subscription of the configuration file)."""
    now = utc_now()
    await add_watch(engine, ASID, IVID, "EU fleet", "slack", now)
    if followed:
        await follow_in_channel(engine, channel, IVID, now)
        async with engine.connect() as conn:
            subscription_id = int(
                await conn.scalar(
                    select(SubscriptionRow.id).where(SubscriptionRow.target == channel)
                )
                or 0
            )
    else:
        seeded = await seed_subscription(
            engine, SlackChannelSubscription(id=0, name="builds", channel=channel)
        )
        subscription_id = seeded.id
    await DatabaseLiveMessages(engine, lambda: now).put(
        LiveMessageKey(subscription_id, ASID, IVID),
        LiveMessage(channel=channel, ts="1700000000.000100"),
    )


def click_payload(
    action_id: str,
    value: str = f"{ASID}:{IVID}",
    *,
    user: str = "U0ANA",
    channel: str = CHANNEL,
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "ana"},
        "channel": {"id": channel, "name": "builds"},
        "message": {"ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "trigger_id": f"trigger-{next(_CLICKS)}",
        "actions": [{"action_id": action_id, "block_id": "live_controls", "value": value}],
    }


def signed(
    payload: dict[str, Any] | str, *, secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return slack_signed({"payload": raw}, secret, at)


@dataclass
class Buttons:
    """The app behind the live message's buttons, and the fake Slack its answers go to."""

    client: Client
    slack: FakeSlack

    async def send(self, body: bytes, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """``POST /slack/interactions`` with a body signed (or not) as the test wants."""
        return await self.client.post(PATH, data=body, headers=headers)

    async def click(
        self, action_id: str, value: str = f"{ASID}:{IVID}", *, user: str = "U0ANA"
    ) -> int:
        """A click signed as Slack signs it; returns the HTTP status the app answered."""
        response = await self.send(*signed(click_payload(action_id, value, user=user)))
        return response.status

    def answers(self, user: str = "U0ANA") -> list[str]:
        """What the person who clicked read, in order."""
        return [str(call.args["text"]) for call in self.slack.ephemerals(user)]


@asynccontextmanager
async def buttons_on_a_live_message(
    engine: AsyncEngine, *, followed: bool = True, **slack_settings: Any
) -> AsyncIterator[Buttons]:
    """A live message in ``CHANNEL`` (see :func:`live_message_in_channel`) and the app behind
    its buttons, configured with ``button_settings(**slack_settings)``."""
    await live_message_in_channel(engine, followed=followed)
    async with button_app(engine, button_settings(**slack_settings)) as (client, slack):
        yield Buttons(client, slack)
