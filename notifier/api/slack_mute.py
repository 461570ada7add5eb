"""Muting from Slack, one set of rules for ``/imagewatch mute`` and the live message's buttons.

Who may: a person in a channel that may change watches (``[slack] command_channels``, as for
``/imagewatch add`` and ``remove``) and that shows or follows the image version. A mute is a
silence of that one image version, by the Slack user Slack verified (shown as a mention on the
message); Unmute ends such silences only, never an operator's broader one. Answers are one line
for the person who asked.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.silences import Matchers, NewSilence
from notifier.notify.render import escape_slack
from notifier.store.live_messages import posted_in_channel
from notifier.store.silences import add_silence, end_silences, expire_mutes, mute_shown
from notifier.store.subscriptions import followed_in_channel
from notifier.store.watches import list_watches

# Slack user ids (U…, or W… on Enterprise Grid); anything else never becomes a mention.
_USER_ID: Final = re.compile(r"[UW][A-Z0-9]{2,20}")


def channel_refusal(allowed: frozenset[str] | None, channel: str) -> str | None:
    if allowed is not None and channel not in allowed:
        return (
            ":no_entry: watches cannot be changed from this channel "
            "(the operator lists the channels in [slack] command_channels)"
        )
    return None


async def image_version_refusal(
    engine: AsyncEngine, channel: str, image_version_id: int
) -> str | None:
    """Why this channel may not mute it: it neither shows nor follows that image version."""
    if await posted_in_channel(engine, channel, image_version_id) is not None:
        return None
    if image_version_id in await followed_in_channel(engine, channel):
        return None
    return (
        f":warning: image version {image_version_id} is not posted in this channel; a channel "
        "mutes only what it follows (`/imagewatch list`)"
    )


def slack_user(user_id: str) -> str | None:
    """``<@U…>`` for a well-formed Slack user id, else None."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else None


async def mute(
    engine: AsyncEngine, image_version_id: int, duration: timedelta, user_id: str, now: datetime
) -> str:
    who = slack_user(user_id)
    if who is None:
        return ":warning: Slack did not say who you are; nothing was muted"
    asked = NewSilence(
        Matchers(image_version_id=image_version_id),
        ends_at=now + duration,
        reason="muted from Slack",
        created_by=who,
    )
    silence = await add_silence(engine, asked, source="slack", now=now)
    return (
        f":no_bell: Image version {image_version_id} is muted until "
        f"{silence.ends_at:%Y-%m-%d %H:%M} UTC (silence {silence.id}): nothing is sent about it "
        "until then, and its message is brought up to date once it ends."
    )


async def unmute(engine: AsyncEngine, image_version_id: int, user_id: str, now: datetime) -> str:
    who = slack_user(user_id) or "slack"
    ended = await expire_mutes(engine, image_version_id, now, who)
    if ended:
        await end_silences(engine, now)
    watch = next(iter(await list_watches(engine, image_version_id=image_version_id)), None)
    still = None
    if watch is not None:
        found = await mute_shown(engine, watch.account_service_id, image_version_id, now)
        still = None if found is None else found[1]
    if still is not None:
        held = f"silence {still.silence_id}" + (
            f" ({escape_slack(still.reason)})" if still.reason else ""
        )
        return (
            f":warning: image version {image_version_id} is still held by {held}, which an "
            f"operator set: `notifier silence expire {still.silence_id}` ends it"
        )
    if not ended:
        return f"Image version {image_version_id} was not muted."
    return f":bell: Image version {image_version_id} is unmuted; its message shows where it is now."
