"""``POST /slack/interactions``: the buttons on the live Slack message.

Slack posts ``application/x-www-form-urlencoded`` with one field, ``payload`` (JSON, ``type:
"block_actions"``), signed like the slash command; it passes the same checks
(:mod:`notifier.api.slack_requests`) and the same permissions as ``/imagewatch``
(:mod:`notifier.api.slack_mute`). Slack wants a 200 within 3 seconds and shows nothing of its
body for a button, so the answer for the person who clicked goes out as ``chat.postEphemeral``
with the bot's token to the configured Slack, never to the payload's ``response_url`` (a URL
from the request is not one to send to). The message itself is updated in place by the
dispatcher, as every live message update is: muting queues its refresh.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.web.async_client import AsyncWebClient

from notifier.api.slack_commands import CommandDeps
from notifier.api.slack_mute import channel_refusal, image_version_refusal, mute, unmute
from notifier.api.slack_requests import add_signed_route
from notifier.core.ids import BadId, parse_id
from notifier.core.silences import MUTE_BUTTON
from notifier.notify.render import ACTION_MUTE, ACTION_OPEN, ACTION_STOP, ACTION_UNMUTE
from notifier.store.subscriptions import followed_in_channel, unfollow_in_channel

log = logging.getLogger(__name__)

PATH: Final = "/slack/interactions"
_ACTIONS: Final = frozenset({ACTION_MUTE, ACTION_UNMUTE, ACTION_STOP})


class InteractionDeps(CommandDeps, Protocol):
    """The slash command's dependencies, and the bot's client for the clicker's answer."""

    @property
    def slack(self) -> AsyncWebClient | None: ...

    @property
    def wake_dispatcher(self) -> Any: ...


def register(
    app: web.Application, deps: InteractionDeps, *, verifier_clock: SignatureClock | None = None
) -> None:
    add_signed_route(
        app,
        PATH,
        deps.settings,
        _Handler(deps).handle,
        what="Slack buttons",
        verifier_clock=verifier_clock,
    )


class BadPayload(ValueError):
    """Not a button click we know: answered 400, nothing changes."""


class _Click:
    """The parts of a ``block_actions`` payload the buttons use, checked."""

    def __init__(self, payload: Any) -> None:
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            raise BadPayload("not a block_actions payload")
        actions = payload.get("actions")
        if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            raise BadPayload("expected exactly one action")
        self.action = str(actions[0].get("action_id", ""))
        self.value = str(actions[0].get("value", ""))
        self.user = _id_of(payload.get("user"))
        self.channel = _id_of(payload.get("channel"))
        if not self.user or not self.channel:
            raise BadPayload("the payload names no user or channel")

    def image_version(self) -> int:
        """The image version a button's value names (``ASID:IMAGE_VERSION_ID``)."""
        _, sep, ivid = self.value.partition(":")
        try:
            if not sep:
                raise BadId("missing")
            return parse_id(ivid)
        except BadId:
            raise BadPayload(f"button value {self.value[:40]!r} names no image version") from None


def _id_of(part: Any) -> str:
    return str(part.get("id", "")) if isinstance(part, dict) else ""


class _Handler:
    def __init__(self, deps: InteractionDeps) -> None:
        self._deps = deps
        channels = deps.settings.slack.command_channels
        self._channels = None if channels is None else frozenset(channels)

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
        form = parse_qs(body.decode("utf-8", "replace"))
        try:
            raw = form.get("payload", [""])[0]
            click = _Click(json.loads(raw) if raw else None)
        except (ValueError, RecursionError) as exc:
            reason = str(exc) if isinstance(exc, BadPayload) else "payload is not JSON"
            return web.Response(status=400, text=f"{reason}\n")
        if click.action == ACTION_OPEN or click.action not in _ACTIONS:
            return web.Response(status=200)  # a link button: Slack opened it, nothing to do
        try:
            image_version_id = click.image_version()
        except BadPayload as exc:
            return web.Response(status=400, text=f"{exc}\n")
        log.info(
            "button %s from user %s in channel %s on image version %d",
            click.action,
            click.user,
            click.channel,
            image_version_id,
        )
        answer = await self._act(click, image_version_id)
        await self._tell(click, answer)
        self._deps.wake_dispatcher()
        return web.Response(status=200)

    async def _act(self, click: _Click, image_version_id: int) -> str:
        engine, now = self._deps.engine, self._deps.clock()
        refusal = channel_refusal(self._channels, click.channel) or await image_version_refusal(
            engine, click.channel, image_version_id
        )
        if refusal is not None:
            return refusal
        if click.action == ACTION_MUTE:
            return await mute(engine, image_version_id, MUTE_BUTTON, click.user, now)
        if click.action == ACTION_UNMUTE:
            return await unmute(engine, image_version_id, click.user, now)
        if image_version_id not in await followed_in_channel(engine, click.channel):
            return (
                f":warning: this channel gets image version {image_version_id} from a "
                "subscription in the configuration file, which only the operator can change"
            )
        await unfollow_in_channel(engine, click.channel, image_version_id)
        return f"This channel no longer follows image version {image_version_id}."

    async def _tell(self, click: _Click, text: str) -> None:
        """The answer only the person who clicked sees."""
        slack = self._deps.slack
        if slack is None:
            log.info("button answer for %s (no bot token to send it): %s", click.user, text)
            return
        try:
            await slack.chat_postEphemeral(channel=click.channel, user=click.user, text=text)
        except SlackApiError as exc:
            log.warning("could not answer %s in %s: %s", click.user, click.channel, exc)
