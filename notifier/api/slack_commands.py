"""``POST /slack/commands``: the ``/imagewatch`` slash command on the service's HTTP server.

Every request first passes :mod:`notifier.api.slack_requests` (signature, five-minute window,
replay refusal), as the buttons' do; anything else gets 401 and changes nothing. Answers are
ephemeral: only the person who typed the command sees them. A command in a channel is about
that channel: ``add`` subscribes it.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import Clock as SignatureClock
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.imagewatch_command import (
    USAGE,
    Add,
    BadCommand,
    Command,
    Help,
    ListFollowed,
    Mute,
    Remove,
    Status,
    Unmute,
    parse,
)
from notifier.api.slack_mute import channel_refusal, image_version_refusal, mute, unmute
from notifier.api.slack_requests import add_signed_route
from notifier.config import Settings
from notifier.core.clock import Clock
from notifier.notify.render import escape_slack, progress_bar
from notifier.store.subscriptions import (
    follow_in_channel,
    followed_by_other_channels,
    followed_in_channel,
    unfollow_in_channel,
)
from notifier.store.watches import (
    DuplicateWatch,
    WatchView,
    add_watch,
    add_watch_owners,
    list_watches,
    remove_watch,
)

log = logging.getLogger(__name__)

PATH: Final = "/slack/commands"


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
    """Add ``POST /slack/commands`` to ``app`` (the API's registrar list calls this), behind
    :mod:`notifier.api.slack_requests`' checks.

    ``verifier_clock`` lets tests move time for the five-minute replay window.
    """
    add_signed_route(
        app,
        PATH,
        deps.settings,
        _Handler(deps.engine, deps.clock, deps.settings).handle,
        what="slash commands",
        verifier_clock=verifier_clock,
    )


class _Handler:
    def __init__(self, engine: AsyncEngine, clock: Clock, settings: Settings) -> None:
        self._engine = engine
        self._clock = clock
        self._account_services = settings.command_account_services()
        channels = settings.slack.command_channels
        self._channels = None if channels is None else frozenset(channels)
        self._max_watches = settings.slack.command_max_watches_per_channel

    async def handle(self, request: web.Request, body: bytes) -> web.Response:
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
        if isinstance(command, Mute | Unmute):
            return _ephemeral(await self._mute(command, channel, form.get("user_id", "")))
        return _ephemeral(await self._run(command, channel))

    async def _mute(self, command: Mute | Unmute, channel: str, user_id: str) -> str:
        refusal = channel_refusal(self._channels, channel) or await image_version_refusal(
            self._engine, channel, command.image_version_id
        )
        if refusal is not None:
            return refusal
        if isinstance(command, Mute):
            return await mute(
                self._engine, command.image_version_id, command.duration, user_id, self._clock()
            )
        return await unmute(self._engine, command.image_version_id, user_id, self._clock())

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
                        owners=command.owners,
                    )
                    watched = "Now watching"
                except DuplicateWatch:
                    pass  # added by someone else meanwhile: fine, it is watched
                known = await _watch(engine, command.image_version_id)
            elif command.owners and known.source == "slack":
                await add_watch_owners(engine, known.id, command.owners)
                known = await _watch(engine, command.image_version_id)
            newly = await follow_in_channel(engine, channel, command.image_version_id, now)
            # Slack does not say whether the bot is in the channel; without it every post fails.
            where = (
                "will post its progress here (if the bot is not in this channel yet, `/invite` it)"
                if newly
                else "this channel already follows it"
            )
            owners = _owners_note(command.owners, known)
            return (
                f"{watched} image version {_name(command.image_version_id, known)}; {where}."
                + owners
            )
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


def _owners_note(asked: tuple[str, ...], watch: WatchView | None) -> str:
    """What became of the owners asked for: mentioned back so the typist sees who gets paged."""
    if not asked or watch is None:
        return ""
    if not set(asked) <= set(watch.owners):
        return (
            f" Its owners are set where it was added ({watch.source}); "
            "the ones named here were not added."
        )
    return " Owners, mentioned when it fails: " + " ".join(watch.owners) + "."
