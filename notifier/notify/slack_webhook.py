"""Delivers to ``slack_webhook`` subscriptions: a Slack incoming-webhook URL instead of a bot token.

Incoming webhooks can only post (no ``ts`` comes back, nothing can be edited or threaded), so each
event is one message with the live message's layout. The URL is the credential: it is never
logged or stored in the database, and error messages name only its host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.retry_after import parse_retry_after
from notifier.core.secret_scrub import scrubber_of
from notifier.core.subscriptions import Subscription, mentions_for
from notifier.notify.guarded_http import refusal_of
from notifier.notify.pacing import ChannelPacer
from notifier.notify.render import SlackMessage, WatchInfo, render, with_mentions
from notifier.notify.render_digest import render_digest
from notifier.notify.sink import Sink

# What Slack answers (as a plain-text body) when the hook itself is unusable: a person must act.
_HOOK_GONE: Final = frozenset(
    {
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
    }
)


class SlackWebhookSink(Sink):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout_seconds: float,
        pacer: ChannelPacer,
        secrets: Sequence[str] = (),
    ) -> None:
        self._session = session
        self._secrets = tuple(secrets)
        self._timeout = max(int(timeout_seconds), 1)
        self._pacer = pacer

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        message = render(WatchInfo.of(event), event.current, event)
        await self._send(subscription, with_mentions(message, mentions_for(subscription, event)))

    async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
        when = subscription.digest.text if subscription.digest is not None else ""
        await self._send(subscription, render_digest(digest, when))

    async def _send(self, subscription: Subscription, message: SlackMessage) -> None:
        if subscription.kind != "slack_webhook" or not subscription.url:
            raise DeliveryFailed(
                f"subscription {subscription.name!r} has no Slack incoming-webhook URL",
                permanent=True,
            )
        client = AsyncWebhookClient(subscription.url, timeout=self._timeout, session=self._session)
        # One hook posts to one channel: pace per subscription, as per channel for the bot.
        pace_key = f"hook:{subscription.id}"
        await self._pacer.wait_turn(pace_key)
        try:
            response = await client.send(text=message.text, blocks=message.blocks)
        except TimeoutError as exc:
            raise DeliveryFailed("Slack did not answer in time") from exc
        except aiohttp.ClientError as exc:
            refusal = refusal_of(exc)
            if refusal is not None:
                raise DeliveryFailed(
                    f"Slack incoming webhook of {subscription.name!r} refused: {refusal.reason}",
                    permanent=True,
                ) from exc
            raise DeliveryFailed(f"could not reach Slack: {type(exc).__name__}") from exc
        # Scrubbed before the cut: an answer quoting the hook URL (the credential) or a token.
        scrubber = scrubber_of((*self._secrets, subscription.url))
        status, body = response.status_code, scrubber.scrub(response.body or "").strip()[:100]
        if 200 <= status < 300:
            return
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            await self._pacer.back_off(pace_key, retry_after or 1.0)
            raise DeliveryFailed("Slack says HTTP 429: slowing down", retry_after=retry_after)
        if status >= 500:
            raise DeliveryFailed(f"Slack answered HTTP {status}: will try again")
        if body in _HOOK_GONE or status in (403, 404, 410):
            raise DeliveryFailed(
                f"Slack says {body or f'HTTP {status}'}: the incoming-webhook URL of "
                f"{subscription.name!r} no longer works; create a new one in the Slack app",
                permanent=True,
            )
        raise DeliveryFailed(
            f"Slack rejected the message (HTTP {status} {body}); this is a notifier bug",
            permanent=True,
        )
