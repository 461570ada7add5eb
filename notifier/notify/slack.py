"""Keeps one Slack message per (subscription, image version) up to date, with a thread of changes.

The live message lives in the database (``LiveMessages``) so that a restart or another replica
edits the same message instead of posting a new one. Slack's errors are sorted into "fix your
setup" (permanent, with what to fix) and "try later" (transient), because the dispatcher retries
the second kind only. The client should have no rate-limit retry handler of its own: the
dispatcher owns retries, and one sleeping inside a call would hold a delivery lease meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from notifier.clanforge.status import FAILED, SQUASHED
from notifier.events.model import STATE_CHANGED, Event
from notifier.notify.outcome import DeliveryFailed
from notifier.notify.render import SlackMessage, render_live_message, render_thread_reply
from notifier.notify.sink import LiveMessage, LiveMessages
from notifier.notify.subscription import Subscription
from notifier.notify.webhook import parse_retry_after

# chat.update cannot edit this message any more: post a fresh one and keep updating that.
_MESSAGE_GONE: Final = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

# Slack's own "try again" errors; everything else Slack answers with ok:false needs a human.
_TRANSIENT_ERRORS: Final = frozenset(
    {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)

log = logging.getLogger(__name__)

_AUTH_HINT: Final = "check [slack] bot_token (the token was rejected or its app was removed)"

_LIVE_MESSAGE_EVENT_TYPE: Final = "clanforge_notifier_live_message"
# Slack's ts comes from Slack's clock, the post's start from ours: look a little further back.
_POST_CLOCK_SKEW_SECONDS: Final = 300

# Broadcast so that people who do not follow the thread still see the job went wrong.
_BROADCAST_STATES: Final = frozenset({FAILED, SQUASHED})


class SlackSink:
    """Delivers to ``slack_channel`` subscriptions through an injected ``AsyncWebClient``."""

    def __init__(self, client: AsyncWebClient, live_messages: LiveMessages) -> None:
        self._client = client
        self._live = live_messages

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        if subscription.kind != "slack_channel":
            raise DeliveryFailed(
                f"subscription {subscription.name!r} is a {subscription.kind}, not a Slack channel",
                permanent=True,
            )
        try:
            await self._deliver(event, subscription)
        except SlackApiError as exc:
            raise _classify(exc, subscription.target) from exc
        except TimeoutError as exc:
            raise DeliveryFailed("Slack did not answer in time") from exc
        except aiohttp.ClientError as exc:
            # The class name only: messages of some ClientErrors quote the request.
            raise DeliveryFailed(f"could not reach Slack: {type(exc).__name__}") from exc

    async def _deliver(self, event: Event, subscription: Subscription) -> None:
        key = (subscription.id, event.account_service_id, event.image_version_id)
        message = render_live_message(event)
        earlier = await self._live.get(*key)
        adopted = False
        if earlier is None:
            # An earlier attempt of this very delivery may have posted and died before storing
            # the ts: adopt that message (an update, no thread reply) rather than post again.
            earlier = await self._find_posted(subscription, event)
            adopted = earlier is not None
        if earlier is None:
            await self._live.begin_post(*key)
            live = await self._post(subscription.target, message, _metadata(subscription, event))
            await self._live.put(*key, replace(live, shows=event.occurred_at))
        elif earlier.shows is not None and event.occurred_at < earlier.shows:
            # A late send of an older event (a dead delivery retried by hand): the live message
            # never goes back to an older state; the thread still gets its line.
            live = earlier
        else:
            live = earlier
            try:
                await self._client.chat_update(
                    channel=earlier.channel, ts=earlier.ts, text=message.text, blocks=message.blocks
                )
            except SlackApiError as exc:
                if _error_code(exc) not in _MESSAGE_GONE:
                    raise
                await self._live.begin_post(*key)
                live = await self._post(
                    subscription.target, message, _metadata(subscription, event)
                )
            await self._live.put(*key, replace(live, shows=event.occurred_at))

        if event.type == STATE_CHANGED and earlier is not None and not adopted:
            reply = render_thread_reply(event)
            await self._client.chat_postMessage(
                channel=live.channel,
                thread_ts=live.ts,
                text=reply.text,
                blocks=reply.blocks,
                reply_broadcast=event.current.state_id in _BROADCAST_STATES,
            )

    async def _post(
        self, channel: str, message: SlackMessage, metadata: dict[str, Any]
    ) -> LiveMessage:
        response = await self._client.chat_postMessage(
            channel=channel, text=message.text, blocks=message.blocks, metadata=metadata
        )
        # Slack answers with the channel id even when given a name; chat.update needs the id.
        return LiveMessage(channel=str(response["channel"]), ts=str(response["ts"]))

    async def _find_posted(self, subscription: Subscription, event: Event) -> LiveMessage | None:
        """The live message an interrupted earlier attempt posted, found by its metadata.

        Only looked for when a post was begun and its ts never stored (a crash in between), so
        a channel's history is read once per crash, not once per message. Without the
        ``channels:history`` scope this cannot look: it says so and a second message is posted.
        """
        key = (subscription.id, event.account_service_id, event.image_version_id)
        since = await self._live.posting_since(*key)
        if since is None:
            return None
        wanted = _metadata(subscription, event)
        try:
            response = await self._client.conversations_history(
                channel=subscription.target,
                oldest=f"{since.timestamp() - _POST_CLOCK_SKEW_SECONDS:.6f}",
                include_all_metadata=True,
                limit=200,
            )
        except SlackApiError as exc:
            log.warning(
                "subscription %r: cannot look for a live message an interrupted attempt may have "
                "posted (Slack says %s; the app needs channels:history); posting a new one",
                subscription.name,
                _error_code(exc),
            )
            return None
        for found in response.get("messages") or []:
            if found.get("metadata") == wanted and found.get("ts"):
                return LiveMessage(
                    channel=str(response.get("channel") or subscription.target), ts=str(found["ts"])
                )
        return None


def _metadata(subscription: Subscription, event: Event) -> dict[str, Any]:
    """Tags the live message with its key, so that it can be found again after a crash."""
    return {
        "event_type": _LIVE_MESSAGE_EVENT_TYPE,
        "event_payload": {
            "subscription_id": subscription.id,
            "account_service_id": event.account_service_id,
            "image_version_id": event.image_version_id,
        },
    }


def _classify(exc: SlackApiError, channel: str) -> DeliveryFailed:
    code = _error_code(exc)
    status = getattr(exc.response, "status_code", None) or getattr(exc.response, "status", None)
    if code == "ratelimited" or status == 429:
        return DeliveryFailed(
            f"Slack says {code or 'HTTP 429'}: too many messages, slowing down",
            retry_after=parse_retry_after(_header(exc, "Retry-After"), datetime.now(UTC)),
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
