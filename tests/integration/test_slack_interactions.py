"""The live message's buttons: ``POST /slack/interactions`` on a bare app with the real store;
what the person who clicked reads comes back through a fake Slack's chat.postEphemeral."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.silences import list_silences
from notifier.store.subscriptions import followed_in_channel
from notifier.store.tables import DeliveryRow
from tests.support.slack_buttons import (
    CHANNEL,
    IVID,
    answers,
    button_app,
    button_settings,
    click,
    click_payload,
    live_message_in_channel,
)


async def _queued_refreshes(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(DeliveryRow).where(DeliveryRow.kind == "refresh")
            )
            or 0
        )


async def test_mute_silences_the_image_version_for_an_hour_and_queues_the_message_update(
    engine: AsyncEngine,
) -> None:
    await live_message_in_channel(engine)
    async with button_app(engine, button_settings()) as (client, slack):
        assert await click(client, click_payload("mute_1h")) == 200

        [silence] = await list_silences(engine, datetime.now(UTC))
        assert (silence.image_version_id, silence.created_by, silence.source) == (
            IVID,
            "<@U0ANA>",
            "slack",
        )
        assert 3590 < (silence.ends_at - silence.starts_at).total_seconds() <= 3600
        [answer] = answers(slack)
        assert answer.startswith(f":no_bell: Image version {IVID} is muted until ")
        # The message shows who muted it and until when once the dispatcher sends this refresh.
        assert await _queued_refreshes(engine) == 1


async def test_unmute_ends_the_mute(engine: AsyncEngine) -> None:
    await live_message_in_channel(engine)
    async with button_app(engine, button_settings()) as (client, slack):
        await click(client, click_payload("mute_1h"))
        assert await click(client, click_payload("unmute")) == 200

        assert await list_silences(engine, datetime.now(UTC)) == []
        assert answers(slack)[-1].startswith(f":bell: Image version {IVID} is unmuted")


async def test_stop_watching_unfollows_the_image_version_in_this_channel(
    engine: AsyncEngine,
) -> None:
    await live_message_in_channel(engine)
    async with button_app(engine, button_settings()) as (client, slack):
        assert await click(client, click_payload("stop_watching")) == 200

        assert await followed_in_channel(engine, CHANNEL) == []
        assert answers(slack) == [f"This channel no longer follows image version {IVID}."]


async def test_stop_watching_a_configured_subscription_says_only_the_operator_can(
    engine: AsyncEngine,
) -> None:
    await live_message_in_channel(engine, followed=False)
    async with button_app(engine, button_settings()) as (client, slack):
        await click(client, click_payload("stop_watching"))

        [answer] = answers(slack)
        assert "subscription in the configuration file" in answer


async def test_the_open_link_button_is_acknowledged_and_changes_nothing(
    engine: AsyncEngine,
) -> None:
    await live_message_in_channel(engine)
    async with button_app(engine, button_settings()) as (client, slack):
        assert await click(client, click_payload("open", "https://x.example/watches/1")) == 200

        assert answers(slack) == []
        assert await list_silences(engine, datetime.now(UTC)) == []
