"""Keeps one Slack message per (subscription, image version) up to date, with a thread of changes.

The live message lives in the database (``LiveMessages``) so that a restart or another replica
edits the same message instead of posting a new one. Slack's errors are sorted into "fix your
setup" (permanent, with what to fix) and "try later" (transient), because the dispatcher retries
the second kind only. The client should have no rate-limit retry handler of its own: the
dispatcher owns retries, and one sleeping inside a call would hold a delivery lease meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.digest import DailyDigest
from notifier.core.events import LIVE_REFRESH, SILENCE_ENDED, STATE_CHANGED, Event
from notifier.core.live_messages import LiveControls, LiveMessage, LiveMessageKey, PendingPost
from notifier.core.retry_after import parse_retry_after
from notifier.core.status import FAILED, SQUASHED, JobStatus
from notifier.core.subscriptions import SlackChannelSubscription, Subscription, mentions_for
from notifier.notify.pacing import ChannelPacer
from notifier.notify.render import (
    SlackMessage,
    WatchInfo,
    render,
    render_held_failure_reply,
    render_thread_reply,
)
from notifier.notify.render_digest import render_digest
from notifier.notify.sink import LiveMessages, Sink

log = logging.getLogger(__name__)

# Slack's guidance for chat.postMessage: about one message per second per channel.
DEFAULT_CHANNEL_INTERVAL_SECONDS: Final = 1.0

# chat.update cannot edit this message any more: post a fresh one and keep updating that.
_MESSAGE_GONE: Final = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

# Slack's own "try again" errors; everything else Slack answers with ok:false needs a human.
_TRANSIENT_ERRORS: Final = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)

_AUTH_HINT: Final = "check [slack] bot_token (the token was rejected or its app was removed)"

# Broadcast so that people who do not follow the thread still see the job went wrong.
_BROADCAST_STATES: Final = frozenset({FAILED, SQUASHED})


StatusLookup = Callable[[int, int], Awaitable[JobStatus | None]]
"""``(account_service_id, image_version_id) -> newest known status``, read when rendering."""

ControlsLookup = Callable[[int, int], Awaitable[LiveControls | None]]
"""``(account_service_id, image_version_id) -> the buttons' state`` (its watch, the silence
holding it now); None: no buttons."""

# Tags our live messages so that one posted just before a crash can be found again.
_METADATA_TYPE: Final = "clanforge_live_message"
# How far before the pending marker to look: clocks of replicas and Slack differ a little.
_HISTORY_SLACK_SECONDS: Final = 60.0


class SlackSink(Sink):
    """Delivers to ``slack_channel`` subscriptions through an injected ``AsyncWebClient``.

    Merging: the live message is rendered from the *newest* known status (``newest_status``), not
    the status of the event being delivered, and an update that would show exactly what the
    message already shows is skipped. So a backlog of N events for one image version costs one
    ``chat.update`` (plus one thread reply per state change, which are never merged).

    A ``LIVE_REFRESH`` (progress or ETA moved, state did not) only updates an existing message.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        live_messages: LiveMessages,
        *,
        newest_status: StatusLookup | None = None,
        pacer: ChannelPacer | None = None,
        controls: ControlsLookup | None = None,
    ) -> None:
        self._client = client
        self._live = live_messages
        self._newest_status = newest_status
        self._controls = controls
        self._pacer = pacer or ChannelPacer(DEFAULT_CHANNEL_INTERVAL_SECONDS)

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        channel = _channel(subscription)
        await self._guarded(channel.channel, self._deliver(event, channel))

    async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
        """One message in the channel, not threaded under any job's live message."""
        channel = _channel(subscription)
        when = channel.digest.text if channel.digest is not None else ""
        message = render_digest(digest, when)

        async def post() -> None:
            await self._pacer.wait_turn(channel.channel)
            await self._client.chat_postMessage(
                channel=channel.channel, text=message.text, blocks=message.blocks
            )

        await self._guarded(channel.channel, post())

    async def _guarded(self, channel: str, send: Awaitable[None]) -> None:
        """Run ``send``, its failures sorted into what the dispatcher retries and what not."""
        try:
            await send
        except SlackApiError as exc:
            failure = _classify(exc, channel)
            if failure.retry_after is not None or _error_code(exc) == "ratelimited":
                await self._pacer.back_off(channel, failure.retry_after or 1.0)
            raise failure from exc
        except TimeoutError as exc:
            raise DeliveryFailed("Slack did not answer in time") from exc
        except aiohttp.ClientError as exc:
            # The class name only: messages of some ClientErrors quote the request.
            raise DeliveryFailed(f"could not reach Slack: {type(exc).__name__}") from exc

    async def _deliver(self, event: Event, subscription: SlackChannelSubscription) -> None:
        key = LiveMessageKey(subscription.id, event.account_service_id, event.image_version_id)
        status = None
        if self._newest_status is not None:
            status = await self._newest_status(event.account_service_id, event.image_version_id)
        refresh = event.type == LIVE_REFRESH
        resume = event.type == SILENCE_ENDED
        controls = None
        if self._controls is not None:
            controls = await self._controls(event.account_service_id, event.image_version_id)
        # A refresh is no event: no note, no reply; it only shows the newest status. Nor is the
        # resume after a silence, which posts the message if the silence held its first post.
        message = render(
            WatchInfo.of(event),
            status or event.current,
            None if refresh or resume else event,
            controls,
        )
        shown = fingerprint(message)

        earlier = await self._live.get(key)
        if refresh and not isinstance(earlier, LiveMessage):
            return  # nothing posted yet (or a post under way): the event delivery posts it
        if isinstance(earlier, PendingPost):
            earlier = await self._recover(earlier, key)
        if earlier is None:
            live = await self._post(subscription.channel, message, shown, key)
        elif earlier.rendered == shown:
            live = earlier  # already shows the newest state: this update is merged into that one
        else:
            live = earlier
            try:
                await self._pacer.wait_turn(earlier.channel)
                await self._client.chat_update(
                    channel=earlier.channel, ts=earlier.ts, text=message.text, blocks=message.blocks
                )
            except SlackApiError as exc:
                if _error_code(exc) not in _MESSAGE_GONE:
                    raise
                live = await self._post(subscription.channel, message, shown, key)
            else:
                live = LiveMessage(channel=earlier.channel, ts=earlier.ts, rendered=shown)
                await self._live.put(key, live)

        # The first post announces the job itself; a first sighting has no change to reply about
        # (even when an interrupted post was found again and this is its retry). A reply that
        # mentions people goes out whatever the event: it is how they hear of it, once, since
        # the outbox sends each delivery once. A resume after a silence mentions nobody: the
        # silence said someone already knows.
        people = () if refresh or resume else mentions_for(subscription, event)
        changed = event.type == STATE_CHANGED and earlier is not None and event.previous is not None
        if changed or people:
            reply = render_thread_reply(event, people)
        elif resume and event.detail.get("failed_meanwhile"):
            reply = render_held_failure_reply(event)
        else:
            return
        await self._pacer.wait_turn(live.channel)
        await self._client.chat_postMessage(
            channel=live.channel,
            thread_ts=live.ts,
            text=reply.text,
            blocks=reply.blocks,
            reply_broadcast=event.current.state_id in _BROADCAST_STATES,
        )

    async def _post(
        self, channel: str, message: SlackMessage, shown: str, key: LiveMessageKey
    ) -> LiveMessage:
        """Post a new live message, with a marker stored first so a crash cannot duplicate it."""
        await self._live.reserve(key, channel)
        await self._pacer.wait_turn(channel)
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                metadata={"event_type": _METADATA_TYPE, "event_payload": _payload(key)},
            )
        except SlackApiError:
            # Slack answered and refused: no message exists, so the next try need not search.
            await self._live.release(key)
            raise
        # Slack answers with the channel id even when given a name; chat.update needs the id.
        live = LiveMessage(channel=str(response["channel"]), ts=str(response["ts"]), rendered=shown)
        await self._live.put(key, live)
        return live

    async def _recover(self, pending: PendingPost, key: LiveMessageKey) -> LiveMessage | None:
        """Find the message an interrupted first post may have left, by its metadata.

        Needs the ``channels:history`` scope (``groups:history`` for private channels). Without
        it, or when nothing is found, a fresh message is posted: at worst one duplicate after a
        crash in that window, which is logged.
        """
        oldest = pending.since.timestamp() - _HISTORY_SLACK_SECONDS
        try:
            response = await self._client.conversations_history(
                channel=pending.channel,
                oldest=f"{oldest:.6f}",
                include_all_metadata=True,
                limit=200,
            )
        except SlackApiError as exc:
            code = _error_code(exc)
            if code == "ratelimited" or code in _TRANSIENT_ERRORS:
                raise
            log.warning(
                "a post to %s may have been interrupted and its history cannot be read (%s); "
                "posting a fresh live message, which may duplicate it",
                pending.channel,
                code,
            )
            return None
        wanted = _payload(key)
        for found in response.get("messages") or []:
            metadata = found.get("metadata") or {}
            if (
                metadata.get("event_type") == _METADATA_TYPE
                and metadata.get("event_payload") == wanted
            ):
                live = LiveMessage(channel=pending.channel, ts=str(found["ts"]))
                await self._live.put(key, live)
                return live
        return None


def _channel(subscription: Subscription) -> SlackChannelSubscription:
    if subscription.kind != "slack_channel":
        raise DeliveryFailed(
            f"subscription {subscription.name!r} is a {subscription.kind}, not a Slack channel",
            permanent=True,
        )
    return subscription


def fingerprint(message: SlackMessage) -> str:
    """Stable digest of what a message shows, stored to skip updates that change nothing."""
    encoded = json.dumps([message.text, message.blocks], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _payload(key: LiveMessageKey) -> dict[str, int]:
    return asdict(key)


def _classify(exc: SlackApiError, channel: str) -> DeliveryFailed:
    code = _error_code(exc)
    status = getattr(exc.response, "status_code", None) or getattr(exc.response, "status", None)
    if code == "ratelimited" or status == 429:
        return DeliveryFailed(
            f"Slack says {code or 'HTTP 429'}: too many messages, slowing down",
            retry_after=parse_retry_after(_header(exc, "Retry-After")),
        )
    if code in _TRANSIENT_ERRORS or (isinstance(status, int) and status >= 500):
        return DeliveryFailed(f"Slack says {code or f'HTTP {status}'}: will try again")
    if code is None:
        return DeliveryFailed(f"Slack answered HTTP {status} without an error code")
    return DeliveryFailed(f"Slack says {code}: {_hint(code, exc, channel)}", permanent=True)


def _hint(code: str, exc: SlackApiError, channel: str) -> str:
    if code == "channel_not_found":
        return f"check the channel id {channel}; a private channel must invite the bot first"
    if code == "not_in_channel":
        return f"invite the bot to {channel}"
    if code == "is_archived":
        return f"{channel} is archived: unarchive it or point the subscription elsewhere"
    if code in {"invalid_auth", "account_inactive", "token_revoked", "not_authed"}:
        return _AUTH_HINT
    if code == "missing_scope":
        needed = _body(exc).get("needed") or "chat:write"
        return f"add the {needed} scope to the Slack app and reinstall it"
    if code in {"msg_too_long", "invalid_blocks"}:
        return "Slack rejected the rendered message; this is a notifier bug, please report it"
    return "Slack rejected the message; see its documentation for this error"


def _body(exc: SlackApiError) -> Mapping[str, Any]:
    data = getattr(exc.response, "data", None)
    return data if isinstance(data, Mapping) else {}


def _error_code(exc: SlackApiError) -> str | None:
    code = _body(exc).get("error")
    return str(code) if code else None


def _header(exc: SlackApiError, name: str) -> str | None:
    headers = getattr(exc.response, "headers", None)
    if not headers:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None
