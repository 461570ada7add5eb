"""``POST /slack/commands`` on a bare aiohttp app with the real store and slack-sdk's verifier.

Requests are signed the way Slack signs them; the verifier's clock is injected, so "five minutes
later" needs no waiting.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.slack_commands import PATH
from notifier.core.status import RUNNING
from notifier.core.subscriptions import SlackChannelSubscription, matches
from notifier.store.subscriptions import load_active_subscriptions
from notifier.store.tables import SubscriptionRow, Watch
from notifier.store.watches import list_watches
from tests.conftest import (
    T0,
    make_event,
    make_status,
    seed_events,
)
from tests.support.clock import HandClock
from tests.support.slash_commands import (
    CHANNEL,
    Client,
    client,
    clock,
    command,
    command_client,
    command_settings,
    signed,
)

__all__ = ["client", "clock"]  # the fixtures, from tests/support


async def _rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        watches = (await conn.execute(select(func.count()).select_from(Watch))).scalar_one()
        subs = (await conn.execute(select(func.count()).select_from(SubscriptionRow))).scalar_one()
    return watches, subs


async def test_add_watches_the_image_version_and_subscribes_the_channel(
    client: Client, engine: AsyncEngine
) -> None:
    answer = await command(client, "add 1234 567890 EU fleet <b>")

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
    client: Client, engine: AsyncEngine
) -> None:
    await command(client, "add 1234 567890")

    again = await command(client, "add 1234 567890")
    elsewhere = await command(client, "add 1234 567890", channel="C0OTHER")
    wrong_account = await command(client, "add 999 567890")

    assert again == "Already watching image version 567890; this channel already follows it."
    assert elsewhere.startswith("Already watching image version 567890; will post its progress")
    assert "already watched under account service 1234, not 999; nothing changed" in wrong_account
    assert await _rows(engine) == (1, 2)


async def test_list_and_status_show_the_last_known_state(
    client: Client, engine: AsyncEngine
) -> None:
    await command(client, "add 1234 567890 EU fleet")
    await command(client, "add 1234 567891")
    [watch] = [w for w in await list_watches(engine) if w.image_version_id == 567890]
    await seed_events(engine, watch.id, [], [make_event(make_status(RUNNING, 40, eta=T0))])

    listed = await command(client, "list")
    status = await command(client, "status 567890")
    unknown = await command(client, "status 42")

    assert listed == (
        "This channel follows:\n"
        "• 567890 (EU fleet): *Running* `▓▓▓▓░░░░░░ 40%`, ETA 2026-11-28 17:00 UTC\n"
        "• 567891: not polled yet"
    )
    assert status == "• 567890 (EU fleet): *Running* `▓▓▓▓░░░░░░ 40%`, ETA 2026-11-28 17:00 UTC"
    assert unknown.startswith(":warning: image version 42 is not watched")
    assert await command(client, "list", channel="C0EMPTY") == (
        "This channel follows no image versions. Add one with `/imagewatch add`."
    )


async def test_remove_unsubscribes_and_drops_a_watch_no_channel_follows(
    client: Client, engine: AsyncEngine
) -> None:
    await command(client, "add 1234 567890")
    await command(client, "add 1234 567890", channel="C0OTHER")

    first = await command(client, "remove 567890")
    second = await command(client, "remove 567890", channel="C0OTHER")
    again = await command(client, "remove 567890")

    assert first == "This channel no longer follows image version 567890."
    assert second.endswith("No other channel follows it, so it is no longer watched.")
    assert again.startswith(":warning: this channel does not follow image version 567890")
    assert await list_watches(engine) == []
    # An empty filter would mean "everything": the emptied subscriptions are off instead.
    assert await load_active_subscriptions(engine, {}) == []


async def test_help_explains_every_subcommand(client: Client) -> None:
    answer = await command(client, "help")
    for usage in ("add ACCOUNT_SERVICE_ID IMAGE_VERSION_ID", "remove", "list", "status"):
        assert usage in answer


async def test_malformed_arguments_answer_what_is_wrong_and_write_nothing(
    client: Client, engine: AsyncEngine
) -> None:
    answer = await command(client, "add 1234 five")

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
    client: Client, engine: AsyncEngine, clock: HandClock, forgery: str
) -> None:
    body, headers = signed("add 1234 567890", secret="not-the-secret" * 2)
    if forgery != "wrong secret":
        body, headers = signed("add 1234 567890")
    if forgery == "tampered body":
        body = body.replace(b"567890", b"567891")
    elif forgery == "stale timestamp":
        body, headers = signed("add 1234 567890", at=clock.seconds() - 6 * 60)
    elif forgery == "replayed later":
        clock.advance(5 * 60 + 1)  # the same, valid request arrives again six minutes on
    elif forgery == "no headers":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif forgery == "bad ts":
        headers["X-Slack-Request-Timestamp"] = "yesterday"

    response = await client.post(PATH, data=body, headers=headers)

    assert response.status == 401
    assert await response.text() == "invalid or stale Slack signature\n"
    assert await _rows(engine) == (0, 0)


async def test_timestamp_within_five_minutes_is_accepted(client: Client, clock: HandClock) -> None:
    answer = await command(client, "help", at=clock.seconds() - 4 * 60)
    assert "/imagewatch" in answer


async def test_without_a_signing_secret_every_command_is_refused(engine: AsyncEngine) -> None:
    body, headers = signed("add 1234 567890")
    async with command_client(engine, command_settings(None)) as client:
        response = await client.post(PATH, data=body, headers=headers)

        assert response.status == 401
        assert "signing_secret is not set" in await response.text()
    assert await _rows(engine) == (0, 0)
