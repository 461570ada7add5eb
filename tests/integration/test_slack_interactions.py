"""The live message's buttons: ``POST /slack/interactions`` on a bare app with the real store;
what the person who clicked reads comes back through a fake Slack's chat.postEphemeral."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.store.silences import list_silences
from notifier.store.subscriptions import followed_in_channel
from notifier.store.tables import DeliveryRow
from tests.support.slack_buttons import CHANNEL, IVID, buttons_on_a_live_message


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
    async with buttons_on_a_live_message(engine) as buttons:
        assert await buttons.click("mute_1h") == 200

        [silence] = await list_silences(engine, utc_now())
        assert (silence.image_version_id, silence.created_by, silence.source) == (
            IVID,
            "<@U0ANA>",
            "slack",
        )
        assert 3590 < (silence.ends_at - silence.starts_at).total_seconds() <= 3600
        [answer] = buttons.answers()
        assert answer.startswith(f":no_bell: Image version {IVID} is muted until ")
        # The message shows who muted it and until when once the dispatcher sends this refresh.
        assert await _queued_refreshes(engine) == 1


async def test_unmute_ends_the_mute(engine: AsyncEngine) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        await buttons.click("mute_1h")
        assert await buttons.click("unmute") == 200

        assert await list_silences(engine, utc_now()) == []
        assert buttons.answers()[-1].startswith(f":bell: Image version {IVID} is unmuted")


async def test_stop_watching_unfollows_the_image_version_in_this_channel(
    engine: AsyncEngine,
) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        assert await buttons.click("stop_watching") == 200

        assert await followed_in_channel(engine, CHANNEL) == []
        assert buttons.answers() == [f"This channel no longer follows image version {IVID}."]


async def test_stop_watching_a_configured_subscription_says_only_the_operator_can(
    engine: AsyncEngine,
) -> None:
    async with buttons_on_a_live_message(engine, followed=False) as buttons:
        await buttons.click("stop_watching")

        [answer] = buttons.answers()
        assert "subscription in the configuration file" in answer


async def test_the_open_link_button_is_acknowledged_and_changes_nothing(
    engine: AsyncEngine,
) -> None:
    async with buttons_on_a_live_message(engine) as buttons:
        assert await buttons.click("open", "https://x.example/watches/1") == 200

        assert buttons.answers() == []
        assert await list_silences(engine, utc_now()) == []
