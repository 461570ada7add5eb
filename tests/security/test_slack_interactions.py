"""The buttons against someone who should not have the run of the service: a click from a
channel the operator did not allow, about an image version the channel does not show, forged,
replayed or stale, changes nothing; the person who clicked is told why when Slack sent it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.store.silences import list_silences
from notifier.store.subscriptions import followed_in_channel
from tests.support.slack_buttons import (
    CHANNEL,
    IVID,
    buttons_on_a_live_message,
    click_payload,
    signed,
)


async def _nothing_changed(engine: AsyncEngine) -> None:
    assert await list_silences(engine, utc_now(), include_ended=True) == []
    assert await followed_in_channel(engine, CHANNEL) == [IVID]


async def test_mute_from_a_channel_the_operator_did_not_allow_changes_nothing_and_says_why(
    engine: AsyncEngine,
) -> None:
    async with buttons_on_a_live_message(engine, command_channels=["C0OPS"]) as buttons:
        assert await buttons.click("mute_1h") == 200

        await _nothing_changed(engine)
        [answer] = buttons.answers()
        assert answer.startswith(":no_entry: watches cannot be changed from this channel")
        assert "command_channels" in answer


@pytest.mark.parametrize("action", ["mute_1h", "unmute", "stop_watching"])
async def test_a_button_about_an_image_version_this_channel_does_not_show_is_refused(
    engine: AsyncEngine, action: str
) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        await buttons.click(action, "1234:424242")

        await _nothing_changed(engine)
        [answer] = buttons.answers()
        assert "image version 424242 is not posted in this channel" in answer


async def test_a_user_id_that_is_not_one_never_becomes_a_mention(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        await buttons.click("mute_1h", user="<!channel>")

        await _nothing_changed(engine)
        assert buttons.answers("<!channel>") == [
            ":warning: Slack did not say who you are; nothing was muted"
        ]


async def test_a_forged_click_is_refused(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        response = await buttons.send(
            *signed(click_payload("mute_1h"), secret="not-the-signing-secret")
        )

        assert response.status == 401
        await _nothing_changed(engine)
        assert buttons.slack.ephemerals() == []


async def test_a_captured_click_sent_again_is_refused(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        body, headers = signed(click_payload("stop_watching"))
        assert (await buttons.send(body, headers)).status == 200

        again = await buttons.send(body, headers)

        assert again.status == 401
        assert await followed_in_channel(engine, CHANNEL) == []
        assert len(buttons.answers()) == 1


async def test_a_click_signed_more_than_five_minutes_ago_is_refused(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        response = await buttons.send(*signed(click_payload("mute_1h"), at=time.time() - 6 * 60))

        assert response.status == 401
        await _nothing_changed(engine)


async def test_without_a_signing_secret_no_click_is_accepted(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine, signing_secret=None) as buttons:
        response = await buttons.send(*signed(click_payload("mute_1h")))

        assert response.status == 401
        assert "signing_secret is not set" in await response.text()
        await _nothing_changed(engine)


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '{"type": "view_submission"}',
        '{"type": "block_actions", "actions": [], "user": {"id": "U0ANA"}}',
        '{"type": "block_actions", "user": {"id": "U0ANA"}, "channel": {"id": "C0BUILDS"},'
        ' "actions": [{"action_id": "mute_1h", "value": "99999999999999999999999"}]}',
        "[" * 5000 + "]" * 5000,
    ],
)
async def test_a_payload_that_is_no_button_click_is_refused_with_400(
    engine: AsyncEngine, payload: str
) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        response = await buttons.send(*signed(payload))

        assert response.status in (400, 413)
        await _nothing_changed(engine)
