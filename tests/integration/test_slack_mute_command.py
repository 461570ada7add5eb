"""``/imagewatch mute`` and ``unmute``: the same silences as the buttons and the CLI, with the
same permissions as the other commands that change what a channel gets."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.store.silences import list_silences
from tests.support.slash_commands import client, clock, command

__all__ = ["client", "clock"]  # the fixtures the commands' tests use


async def test_mute_silences_a_followed_image_version_for_the_given_time(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    await command(client, "add 1234 567890 EU fleet")

    answer = await command(client, "mute 567890 2h")

    [silence] = await list_silences(engine, utc_now())
    assert answer.startswith(":no_bell: Image version 567890 is muted until ")
    assert f"(silence {silence.id})" in answer
    assert (silence.matches, silence.created_by, silence.source) == (
        "image version 567890",
        "<@U0PERSON>",
        "slack",
    )
    assert round((silence.ends_at - silence.starts_at).total_seconds()) == 7200

    assert (await command(client, "unmute 567890")).startswith(":bell: Image version 567890")
    assert await list_silences(engine, utc_now()) == []


async def test_mute_of_an_image_version_the_channel_does_not_follow_is_refused(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    answer = await command(client, "mute 567890 2h")

    assert answer.startswith(":warning: image version 567890 is not posted in this channel")
    assert await list_silences(engine, utc_now(), include_ended=True) == []


async def test_mute_with_a_bad_duration_says_how_to_write_it(
    client: TestClient[Any, Any], engine: AsyncEngine
) -> None:
    await command(client, "add 1234 567890")

    answer = await command(client, "mute 567890 forever")

    assert answer.startswith(":warning: duration 'forever' is not a whole number")
    assert await list_silences(engine, utc_now(), include_ended=True) == []
