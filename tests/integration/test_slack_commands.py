"""``POST /slack/commands`` on a bare aiohttp app with the real store and slack-sdk's verifier.

Requests are signed the way Slack signs them; the verifier's clock is injected, so "five minutes
later" needs no waiting.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.signature import Clock
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.slack_commands import PATH, register
from notifier.config import Settings
from notifier.core.clock import utc_now
from notifier.core.status import RUNNING
from notifier.core.subscriptions import SlackChannelSubscription, matches
from notifier.store.subscriptions import load_active_subscriptions
from notifier.store.tables import SubscriptionRow, Watch
from notifier.store.watches import list_watches
from tests.conftest import (
    T0,
    add_hand_watches,
    make_event,
    make_status,
    rows_selected,
    seed_events,
    sent_statements,
)
from tests.support.slack_signing import slack_signed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_TRIGGERS = itertools.count()
CHANNEL = "C0BUILDS"


@dataclass(frozen=True)
class _Deps:
    """The fields of the API's shared dependencies that the handler uses."""

    engine: AsyncEngine
    settings: Settings
    clock: Callable[[], datetime] = utc_now


def _settings(signing_secret: str | None) -> Settings:
    # The account services these tests add watches under (issue 22: /imagewatch may only watch
    # the ones the operator allows).
    slack: dict[str, Any] = {"command_account_services": [1234, 999]}
    if signing_secret is not None:
        slack["signing_secret"] = signing_secret
    return Settings.model_validate(
        {
            "clanforge": {"access_key": "a", "secret_key": "s"},
            "slack": slack,
        }
    )


class FrozenClock(Clock):
    def __init__(self) -> None:
        self.value = time.time()

    def now(self) -> float:
        return self.value


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def client(engine: AsyncEngine, clock: FrozenClock) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    register(app, _Deps(engine, _settings(SECRET)), verifier_clock=clock)
    async with TestClient(TestServer(app, host="127.0.0.1")) as running:
        yield running


def _signed(
    text: str, *, channel: str = CHANNEL, secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
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


async def _command(client: TestClient[Any, Any], text: str, **kwargs: Any) -> str:
    body, headers = _signed(text, **kwargs)
    response = await client.post(PATH, data=body, headers=headers)
    assert response.status == 200
    answer = await response.json()
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def _rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        watches = (await conn.execute(select(func.count()).select_from(Watch))).scalar_one()
        subs = (await conn.execute(select(func.count()).select_from(SubscriptionRow))).scalar_one()
    return watches, subs


async def test_add_watches_the_image_version_and_subscribes_the_channel(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    answer = await _command(client, "add 1234 567890 EU fleet <b>")

    assert answer == (
        "Now watching image version 567890 (EU fleet &lt;b&gt;); will post its progress here "
        "(if the bot is not in this channel yet, `/invite` it)."
    )
    [watch] = await list_watches(engine)
    assert (watch.account_service_id, watch.image_version_id, watch.source) == (
        1234,
        567890,
        "slack",
    )
    [subscription] = await load_active_subscriptions(engine, {})
    assert isinstance(subscription, SlackChannelSubscription)
    assert subscription.channel == CHANNEL
    assert matches(subscription, make_event(make_status(RUNNING, 10, image_version_id=567890)))
    assert not matches(subscription, make_event(make_status(RUNNING, 10, image_version_id=1)))


async def test_add_again_or_from_another_channel_says_what_already_holds(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    await _command(client, "add 1234 567890")

    again = await _command(client, "add 1234 567890")
    elsewhere = await _command(client, "add 1234 567890", channel="C0OTHER")
    wrong_account = await _command(client, "add 999 567890")

    assert again == "Already watching image version 567890; this channel already follows it."
    assert elsewhere.startswith("Already watching image version 567890; will post its progress")
    assert "already watched under account service 1234, not 999; nothing changed" in wrong_account
    assert await _rows(engine) == (1, 2)


async def test_list_and_status_show_the_last_known_state(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    await _command(client, "add 1234 567890 EU fleet")
    await _command(client, "add 1234 567891")
    [watch] = [w for w in await list_watches(engine) if w.image_version_id == 567890]
    await seed_events(engine, watch.id, [], [make_event(make_status(RUNNING, 40, eta=T0))])

    listed = await _command(client, "list")
    status = await _command(client, "status 567890")
    unknown = await _command(client, "status 42")

    assert listed == (
        "This channel follows:\n"
        "• 567890 (EU fleet): *Running* `▓▓▓▓░░░░░░ 40%`, ETA 2026-11-28 17:00 UTC\n"
        "• 567891: not polled yet"
    )
    assert status == "• 567890 (EU fleet): *Running* `▓▓▓▓░░░░░░ 40%`, ETA 2026-11-28 17:00 UTC"
    assert unknown.startswith(":warning: image version 42 is not watched")
    assert await _command(client, "list", channel="C0EMPTY") == (
        "This channel follows no image versions. Add one with `/imagewatch add`."
    )


async def test_list_and_status_read_the_channels_watches_not_the_whole_watch_list(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    """Slack gives a slash command three seconds; a studio may watch thousands of versions."""
    await add_hand_watches(engine, range(1, 2001))
    await _command(client, "add 1234 567890 EU fleet")
    await _command(client, "add 1234 5")

    with sent_statements(engine) as sent:
        listed = await _command(client, "list")
        status = await _command(client, "status 5")

    assert listed == (
        "This channel follows:\n"
        "• 567890 (EU fleet): not polled yet\n"
        "• 5 (by hand 5): not polled yet"
    )
    assert status == "• 5 (by hand 5): not polled yet"
    assert await rows_selected(engine, sent) <= 10


async def test_remove_unsubscribes_and_drops_a_watch_no_channel_follows(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    await _command(client, "add 1234 567890")
    await _command(client, "add 1234 567890", channel="C0OTHER")

    first = await _command(client, "remove 567890")
    second = await _command(client, "remove 567890", channel="C0OTHER")
    again = await _command(client, "remove 567890")

    assert first == "This channel no longer follows image version 567890."
    assert second.endswith("No other channel follows it, so it is no longer watched.")
    assert again.startswith(":warning: this channel does not follow image version 567890")
    assert await list_watches(engine) == []
    # An empty filter would mean "everything": the emptied subscriptions are off instead.
    assert await load_active_subscriptions(engine, {}) == []


async def test_help_explains_every_subcommand(client: TestClient[Any, Any]) -> None:
    answer = await _command(client, "help")
    for usage in ("add ACCOUNT_SERVICE_ID IMAGE_VERSION_ID", "remove", "list", "status"):
        assert usage in answer


async def test_malformed_arguments_answer_what_is_wrong_and_write_nothing(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    answer = await _command(client, "add 1234 five")

    assert answer == (
        ":warning: the image version id must be a positive number, got `five`\n"
        "See `/imagewatch help`."
    )
    assert await _rows(engine) == (0, 0)


@pytest.mark.parametrize(
    "forgery",
    ["wrong secret", "tampered body", "stale timestamp", "replayed later", "no headers", "bad ts"],
)
async def test_unverified_request_gets_401_and_writes_nothing(
    client: TestClient[Any, Any], engine: AsyncEngine, clock: FrozenClock, forgery: str
) -> None:
    body, headers = _signed("add 1234 567890", secret="not-the-secret" * 2)
    if forgery != "wrong secret":
        body, headers = _signed("add 1234 567890")
    if forgery == "tampered body":
        body = body.replace(b"567890", b"567891")
    elif forgery == "stale timestamp":
        body, headers = _signed("add 1234 567890", at=clock.value - 6 * 60)
    elif forgery == "replayed later":
        clock.value += 5 * 60 + 1  # the same, valid request arrives again six minutes on
    elif forgery == "no headers":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif forgery == "bad ts":
        headers["X-Slack-Request-Timestamp"] = "yesterday"

    response = await client.post(PATH, data=body, headers=headers)

    assert response.status == 401
    assert await response.text() == "invalid or stale Slack signature\n"
    assert await _rows(engine) == (0, 0)


async def test_timestamp_within_five_minutes_is_accepted(
    client: TestClient[Any, Any], clock: FrozenClock
) -> None:
    answer = await _command(client, "help", at=clock.value - 4 * 60)
    assert "/imagewatch" in answer


async def test_without_a_signing_secret_every_command_is_refused(engine: AsyncEngine) -> None:
    app = web.Application()
    register(app, _Deps(engine, _settings(None)))
    body, headers = _signed("add 1234 567890")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post(PATH, data=body, headers=headers)

        assert response.status == 401
        assert "signing_secret is not set" in await response.text()
    assert await _rows(engine) == (0, 0)
