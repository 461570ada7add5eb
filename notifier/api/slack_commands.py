"""``POST /slack/commands``: the ``/imagewatch`` slash command on the service's HTTP server.

Every request is checked with the app's signing secret (slack-sdk's ``SignatureVerifier``, which
also rejects timestamps more than five minutes off, so a captured request cannot be replayed
later); anything else gets 401 and changes nothing. Answers are ephemeral: only the person who
typed the command sees them. A command in a channel is about that channel: ``add`` subscribes it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.imagewatch_command import (
    USAGE,
    Add,
    BadCommand,
    Command,
    Help,
    ListFollowed,
    Remove,
    Status,
    parse,
)
from notifier.config import Settings
from notifier.core.clock import Clock
from notifier.notify.render import escape_slack, progress_bar
from notifier.store.subscriptions import (
    follow_in_channel,
    followed_by_other_channels,
    followed_in_channel,
    unfollow_in_channel,
)
from notifier.store.watches import DuplicateWatch, WatchView, add_watch, list_watches, remove_watch

log = logging.getLogger(__name__)

PATH: Final = "/slack/commands"
# Slack sends a few hundred bytes; anything much bigger is not Slack.
_MAX_BODY: Final = 16 * 1024


class CommandDeps(Protocol):
    """What the handler needs from the API's shared dependencies (``notifier.api.deps.ApiDeps``)."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...


def register(
    app: web.Application, deps: CommandDeps, *, verifier_clock: SignatureClock | None = None
) -> None:
    """Add ``POST /slack/commands`` to ``app`` (the API's registrar list calls this).

    ``verifier_clock`` lets tests move time for the five-minute replay window.
    """
    secret = deps.settings.slack.signing_secret
    if secret is None or not secret.get_secret_value():
        app.router.add_post(PATH, _disabled)
        return
    verifier = SignatureVerifier(
        secret.get_secret_value(), **({"clock": verifier_clock} if verifier_clock else {})
    )
    app.router.add_post(PATH, _Handler(deps.engine, verifier, deps.clock, deps.settings).handle)


async def _disabled(request: web.Request) -> web.Response:
    """Without a signing secret no request can be verified, so none is accepted."""
    return web.Response(
        status=401, text="slash commands are off: [slack] signing_secret is not set\n"
    )


REPLAY_WINDOW_SECONDS: Final = 5 * 60
"""slack-sdk's verifier accepts a timestamp this far off: a signature is remembered as long."""
_MAX_REMEMBERED: Final = 100_000


class SeenSignatures:
    """Signatures already answered, for as long as the verifier would accept them again: a
    captured request replayed within Slack's five-minute window is refused. Each replica keeps
    its own; Slack sends each request once, to one of them."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def first_time(self, signature: str, now: float) -> bool:
        if len(self._until) > 1024:
            self._until = {s: t for s, t in self._until.items() if t > now}
            if len(self._until) > _MAX_REMEMBERED:  # a flood: keep the newest half
                kept = sorted(self._until.items(), key=lambda item: item[1])
                self._until = dict(kept[len(kept) // 2 :])
        if self._until.get(signature, 0.0) > now:
            return False
        self._until[signature] = now + 2 * REPLAY_WINDOW_SECONDS
        return True


class _Handler:
    def __init__(
        self, engine: AsyncEngine, verifier: SignatureVerifier, clock: Clock, settings: Settings
    ) -> None:
        self._engine = engine
        self._verifier = verifier
        self._clock = clock
        self._seen = SeenSignatures()
        self._account_services = settings.command_account_services()
        channels = settings.slack.command_channels
        self._channels = None if channels is None else frozenset(channels)
        self._max_watches = settings.slack.command_max_watches_per_channel

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > _MAX_BODY:
            return web.Response(status=413, text="request too large\n")
        body = await request.read()
        if len(body) > _MAX_BODY:
            return web.Response(status=413, text="request too large\n")
        if not self._verified(request, body):
            return web.Response(status=401, text="invalid or stale Slack signature\n")
        signature = request.headers.get("X-Slack-Signature", "")
        if not self._seen.first_time(signature, time.time()):
            return web.Response(status=401, text="this request was already answered\n")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}
        channel = form.get("channel_id", "").strip()
        if not channel:
            return _ephemeral("this command has no channel_id; run it from a Slack channel")
        try:
            command = parse(form.get("text", ""))
        except BadCommand as exc:
            return _ephemeral(f":warning: {exc}\nSee `/imagewatch help`.")
        log.info(
            "slash command %s from user %s in channel %s",
            type(command).__name__,
            form.get("user_id", "?"),
            channel,
        )
        refusal = await self._refusal(command, channel)
        if refusal is not None:
            return _ephemeral(refusal)
        return _ephemeral(await self._run(command, channel))

    async def _refusal(self, command: Command, channel: str) -> str | None:
        """Why this channel may not run ``command``, in a line for the person who typed it."""
        if isinstance(command, Add | Remove) and (
            self._channels is not None and channel not in self._channels
        ):
            return (
                ":no_entry: watches cannot be added or removed from this channel "
                "(the operator lists the channels in [slack] command_channels)"
            )
        if isinstance(command, Add):
            if command.account_service_id not in self._account_services:
                return (
                    f":no_entry: account service {command.account_service_id} is not one "
                    "/imagewatch may watch (the operator lists them in [slack] "
                    "command_account_services)"
                )
            followed = await followed_in_channel(self._engine, channel)
            if command.image_version_id not in followed and len(followed) >= self._max_watches:
                return (
                    f":no_entry: this channel already follows {len(followed)} image versions, "
                    f"the most it may ([slack] command_max_watches_per_channel); "
                    "remove one first"
                )
        if isinstance(command, Status) and command.image_version_id not in (
            await followed_in_channel(self._engine, channel)
        ):
            # The same words whether another channel watches it or nobody does.
            return (
                f":warning: image version {command.image_version_id} is not watched in this "
                "channel; `/imagewatch list` shows what it follows"
            )
        return None

    def _verified(self, request: web.Request, body: bytes) -> bool:
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        try:
            return self._verifier.is_valid(body, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            return False

    async def _run(self, command: Command, channel: str) -> str:
        engine, now = self._engine, self._clock()
        if isinstance(command, Help):
            return USAGE
        if isinstance(command, Add):
            known = await _watch(engine, command.image_version_id)
            if known is not None and known.account_service_id != command.account_service_id:
                return (
                    f":warning: image version {command.image_version_id} is already watched "
                    f"under account service {known.account_service_id}, not "
                    f"{command.account_service_id}; nothing changed"
                )
            watched = "Already watching"
            if known is None:
                try:
                    await add_watch(
                        engine,
                        command.account_service_id,
                        command.image_version_id,
                        command.label,
                        "slack",
                        now,
                    )
                    watched = "Now watching"
                except DuplicateWatch:
                    pass  # added by someone else meanwhile: fine, it is watched
                known = await _watch(engine, command.image_version_id)
            newly = await follow_in_channel(engine, channel, command.image_version_id, now)
            # Slack does not say whether the bot is in the channel; without it every post fails.
            where = (
                "will post its progress here (if the bot is not in this channel yet, `/invite` it)"
                if newly
                else "this channel already follows it"
            )
            return f"{watched} image version {_name(command.image_version_id, known)}; {where}."
        if isinstance(command, Remove):
            known = await _watch(engine, command.image_version_id)
            if not await unfollow_in_channel(engine, channel, command.image_version_id):
                return (
                    f":warning: this channel does not follow image version "
                    f"{command.image_version_id}; `/imagewatch list` shows what it follows"
                )
            stopped = ""
            if (
                known is not None
                and known.source == "slack"
                and not await followed_by_other_channels(engine, channel, command.image_version_id)
            ):
                await remove_watch(engine, command.image_version_id, known.account_service_id)
                stopped = " No other channel follows it, so it is no longer watched."
            return (
                f"This channel no longer follows image version "
                f"{_name(command.image_version_id, known)}.{stopped}"
            )
        if isinstance(command, ListFollowed):
            followed = await followed_in_channel(engine, channel)
            if not followed:
                return "This channel follows no image versions. Add one with `/imagewatch add`."
            watches: dict[int, WatchView] = {}
            for watch in await list_watches(engine, image_version_ids=followed):
                watches.setdefault(watch.image_version_id, watch)
            lines = [_line(ivid, watches.get(ivid)) for ivid in followed]
            return "This channel follows:\n" + "\n".join(lines)
        assert isinstance(command, Status)
        known = await _watch(engine, command.image_version_id)
        if known is None:
            return (
                f":warning: image version {command.image_version_id} is not watched; "
                "`/imagewatch add ACCOUNT_SERVICE_ID IMAGE_VERSION_ID` watches it"
            )
        return _line(command.image_version_id, known)


async def _watch(engine: AsyncEngine, image_version_id: int) -> WatchView | None:
    """The watch of an image version; the first account service's, should two have it."""
    return next(iter(await list_watches(engine, image_version_id=image_version_id)), None)


def _name(image_version_id: int, watch: WatchView | None) -> str:
    label = watch.label.strip() if watch is not None else ""
    return f"{image_version_id} ({escape_slack(label)})" if label else str(image_version_id)


def _line(image_version_id: int, watch: WatchView | None) -> str:
    if watch is None:
        return f"• {image_version_id}: no longer watched"
    status = watch.status
    if status is None:
        state = "not polled yet"
    else:
        state = f"*{escape_slack(status.state)}* `{progress_bar(status.progress)}`"
        if status.eta is not None:
            state += f", ETA {status.eta:%Y-%m-%d %H:%M} UTC"
    problem = (
        f" (polling failing: {escape_slack(watch.last_poll_error)})"
        if (watch.poll_errors and watch.last_poll_error)
        else ""
    )
    return f"• {_name(image_version_id, watch)}: {state}{problem}"


def _ephemeral(text: str) -> web.Response:
    payload: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    return web.json_response(payload)
