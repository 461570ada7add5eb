"""``/imagewatch`` against a workspace member who should not have the run of the service: each
refused command changes nothing, and a captured request cannot be sent twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.slack_commands import PATH
from notifier.config import Settings
from notifier.store.subscriptions import followed_in_channel
from notifier.store.tables import SubscriptionRow
from notifier.store.watches import ConfigWatch, list_watches, sync_config_watches
from tests.conftest import T0, add_subscription_row
from tests.support.slash_commands import (
    CHANNEL,
    SECRET,
    Client,
    answer,
    command_client,
    signed,
)


def _settings(**slack: Any) -> Settings:
    """Account service 1234 is in a configured watch and 777 in an account: the default rule
    lets /imagewatch watch those two, nothing else."""
    return Settings.model_validate(
        {
            "clanforge": {
                "access_key": "a",
                "secret_key": "s",
                "account": [
                    {
                        "name": "studio",
                        "access_key": "b",
                        "secret_key": "t",
                        "account_service_ids": [777],
                    }
                ],
            },
            "slack": {"signing_secret": SECRET, **slack},
            "watch": [{"account_service_id": 1234, "image_version_id": 1}],
        }
    )


async def _say(client: Client, text: str, channel: str = CHANNEL) -> str:
    return str((await answer(client, text, channel=channel))["text"])


async def test_a_captured_request_sent_again_is_refused(engine: AsyncEngine) -> None:
    async with command_client(engine, _settings()) as client:
        body, headers = signed("add 1234 42")
        first = await client.post(PATH, data=body, headers=headers)
        assert first.status == 200
        await _say(client, "remove 42")
        again = await client.post(PATH, data=body, headers=headers)
        assert again.status == 401
        assert await followed_in_channel(engine, CHANNEL) == []


async def test_only_the_allowed_account_services_can_be_watched(engine: AsyncEngine) -> None:
    async with command_client(engine, _settings()) as client:
        answer = await _say(client, "add 9999 42")
        assert "9999" in answer
        assert "command_account_services" in answer
        assert await list_watches(engine) == []
        assert "Now watching" in await _say(client, "add 1234 42")
        assert "Now watching" in await _say(client, "add 777 43")
    async with command_client(engine, _settings(command_account_services=[9999])) as client:
        assert "Now watching" in await _say(client, "add 9999 44")


async def test_mutating_commands_only_in_the_allowed_channels(engine: AsyncEngine) -> None:
    async with command_client(engine, _settings(command_channels=["C0OPS"])) as client:
        for text in ("add 1234 42", "remove 42"):
            answer = await _say(client, text, channel="C0RANDOM")
            assert "command_channels" in answer
        assert await list_watches(engine) == []
        assert "Now watching" in await _say(client, "add 1234 42", channel="C0OPS")
        # Reading is allowed anywhere: the channel sees what it follows (nothing here).
        assert "follows no image versions" in await _say(client, "list", channel="C0RANDOM")


async def test_a_channel_cannot_add_more_than_its_share_of_watches(engine: AsyncEngine) -> None:
    async with command_client(engine, _settings(command_max_watches_per_channel=3)) as client:
        for ivid in (1, 2, 3):
            assert "atching" in await _say(client, f"add 1234 {ivid}")
        answer = await _say(client, "add 1234 4")
        assert "command_max_watches_per_channel" in answer
    assert await followed_in_channel(engine, CHANNEL) == [1, 2, 3]


async def test_status_answers_only_for_what_the_channel_follows(engine: AsyncEngine) -> None:
    async with command_client(engine, _settings()) as client:
        await _say(client, "add 1234 42", channel="C0SECRET")
        answer = await _say(client, "status 42", channel="C0OTHER")
        assert "is not watched in this channel" in answer
        assert "not polled" not in answer


async def test_a_subscription_named_like_the_channel_is_not_taken_over(
    engine: AsyncEngine,
) -> None:
    squatter = await add_subscription_row(
        engine,
        f"slack:{CHANNEL}",
        "https://attacker.example/hook",
        source="api",
        filters={"image_version_ids": [7]},
    )
    async with command_client(engine, _settings()) as client:
        assert "Now watching" in await _say(client, "add 1234 42")
        assert "42" in await _say(client, "list")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SubscriptionRow.id, SubscriptionRow.kind, SubscriptionRow.filters)
            )
        ).all()
    by_id = {row.id: row for row in rows}
    assert by_id[squatter].filters == {"image_version_ids": [7]}  # untouched
    (ours,) = [row for row in rows if row.id != squatter]
    assert ours.kind == "slack_channel"
    assert ours.filters["image_version_ids"] == [42]


async def test_owners_come_only_from_what_slack_escaped_and_the_typist_sees_them(
    engine: AsyncEngine,
) -> None:
    async with command_client(engine, _settings()) as client:
        refused = await _say(client, "add 1234 42 EU fleet owner @alice")
        assert "Escape channels, users, and links" in refused
        assert await list_watches(engine) == []

        answer = await _say(client, "add 1234 42 EU fleet owner <@U0ALICE01|alice>")
        assert "Owners, mentioned when it fails: <@U0ALICE01>." in answer
        # A label that looks like a mention is only a label: it pages nobody and owns nothing.
        await _say(client, "add 1234 43 <@U0MALLORY|mallory> build", channel="C0OTHER")
    watches = {w.image_version_id: w for w in await list_watches(engine)}
    assert watches[42].owners == ("<@U0ALICE01>",)
    assert watches[43].owners == ()
    assert watches[43].label == "<@U0MALLORY|mallory> build"


async def test_a_channel_cannot_add_owners_to_a_watch_from_the_configuration(
    engine: AsyncEngine,
) -> None:
    async with command_client(engine, _settings()) as client:
        await _say(client, "add 1234 42")
        await sync_config_watches(engine, [ConfigWatch(1234, 42, "from the file")], T0)
        answer = await _say(client, "add 1234 42 owner <@U0MALLORY|mallory>")
    assert "the ones named here were not added" in answer
    [watch] = await list_watches(engine)
    assert watch.owners == ()
