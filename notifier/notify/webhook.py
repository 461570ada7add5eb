"""Sends events to chatops webhooks, signed per Standard Webhooks, and classifies what went wrong.

The classification is the point: the dispatcher retries transient failures with backoff and
marks permanent ones dead at once, so a 4xx must not be retried for a day and a 503 must not be
dropped. Reasons end up in logs and the deliveries table, so they name the host and never the
URL's query string, which often carries a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, NoReturn

import aiohttp

from notifier import __version__
from notifier.core.clock import utc_now
from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.retry_after import parse_retry_after
from notifier.core.secret_scrub import Scrubber, scrubber_of
from notifier.core.subscriptions import Subscription, WebhookSubscription
from notifier.core.urls import redact_url
from notifier.notify.guarded_http import refusal_of
from notifier.notify.payload import digest_payload, encode_payload, webhook_payload
from notifier.notify.signing import standard_headers
from notifier.notify.sink import Sink
from notifier.notify.template import TemplateProblem, render

USER_AGENT: Final = f"clanforge-notifier/{__version__}"
# Enough for any error page worth quoting; a receiver streaming gigabytes must not stall us.
BODY_READ_CAP: Final = 64 * 1024
BODY_EXCERPT_CHARS: Final = 200
_TRANSIENT_STATUSES: Final = frozenset({408, 429})


class WebhookSink(Sink):
    """POSTs the payload over the one shared session; the session's owner closes it."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        clock: Callable[[], datetime] = utc_now,
        secrets: Sequence[str] = (),
    ) -> None:
        self._session = session
        # The configuration's secrets, scrubbed from a receiver's answer before it is cut.
        self._secrets = tuple(secrets)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._clock = clock

    async def deliver(self, event: Event, subscription: Subscription) -> None:
        await self.send(event, subscription)

    async def deliver_digest(self, digest: DailyDigest, subscription: Subscription) -> None:
        """Our ``digest.daily`` payload, whatever the subscription's template: templates are
        written for events (checked against every event type), and a digest is none."""
        body = encode_payload(digest_payload(digest))
        await self.post(subscription, digest.id, body)

    async def send(self, event: Event, subscription: Subscription) -> int:
        """POST ``event``; the 2xx status on success, ``DeliveryFailed`` otherwise."""
        if subscription.kind == "webhook" and subscription.template is not None:
            # A template is user-written code: even within its bounds it renders in a worker
            # thread, so that no template holds up the event loop (and every other send).
            body = await asyncio.to_thread(self.body, event, subscription)
        else:
            body = self.body(event, subscription)
        return await self.post(subscription, event.id, body)

    def body(self, event: Event, subscription: Subscription) -> bytes:
        """What is POSTed: the subscription's own template rendered, or our payload."""
        subscription = _webhook(subscription)
        if subscription.template is None:
            return encode_payload(webhook_payload(event))
        try:
            return render(subscription.template, event)
        except TemplateProblem as exc:
            # Checked at config load against every event type; reaching here is a bug.
            raise DeliveryFailed(
                f"subscription {subscription.name!r}: body template {exc}", permanent=True
            ) from exc

    async def post(self, subscription: Subscription, msg_id: str, body: bytes) -> int:
        """POST ``body`` (see :meth:`body`) signed as message ``msg_id`` at the time of the
        send."""
        subscription = _webhook(subscription)
        return await self._post(
            subscription.url, body, msg_id, subscription.signing_secrets, subscription.name
        )

    async def _post(
        self, url: str, body: bytes, msg_id: str, secrets: tuple[str, ...], name: str
    ) -> int:
        headers = self._headers(msg_id, body, secrets)
        # The request's own timeout covers connecting, sending and the status line; the deadline
        # also covers the capped read of an error body, so a receiver trickling bytes cannot hold
        # a dispatcher slot past the timeout. Only a failure reads a body: a success pays for
        # neither an extra timer nor describing the URL.
        deadline = asyncio.get_running_loop().time() + self._timeout_seconds
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                if 200 <= response.status < 300:
                    return response.status
                async with asyncio.timeout_at(deadline):
                    scrubber = scrubber_of((*self._secrets, *secrets))
                    await self._raise_for(response, redact_url(url), scrubber)
                raise AssertionError("unreachable: _raise_for always raises")
        except DeliveryFailed:
            raise
        except TimeoutError as exc:
            raise DeliveryFailed(
                f"webhook {redact_url(url)} did not answer within {self._timeout_seconds:g} s"
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise DeliveryFailed(
                f"webhook URL for subscription {name!r} is not a valid URL",
                permanent=True,
            ) from exc
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ClientOSError,
            aiohttp.ServerDisconnectedError,
        ) as exc:
            refusal = refusal_of(exc)
            if refusal is not None:
                raise DeliveryFailed(
                    f"webhook {redact_url(url)} refused: {refusal.reason}", permanent=True
                ) from exc
            # One text for refused, reset and unreachable alike: what the error said would tell
            # an open port from a closed one to whoever reads the delivery's error.
            raise DeliveryFailed(
                f"could not connect to webhook {redact_url(url)} (refused, reset or closed)"
            ) from exc
        except aiohttp.ClientError as exc:
            # Not str(exc): some ClientErrors quote the full URL, query string and all.
            raise DeliveryFailed(f"webhook {redact_url(url)} failed: {type(exc).__name__}") from exc

    def _headers(self, event_id: str, body: bytes, secrets: tuple[str, ...]) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **standard_headers(event_id, self._clock(), body, secrets),
        }

    async def _raise_for(
        self, response: aiohttp.ClientResponse, where: str, scrubber: Scrubber
    ) -> NoReturn:
        status = response.status
        if 300 <= status < 400:
            location = response.headers.get("Location")
            target = redact_url(location) if location else "nowhere"
            raise DeliveryFailed(
                f"webhook {where} answered {status} redirecting to {target}: "
                "redirects are not followed, configure the final URL",
                permanent=True,
            )
        if status in _TRANSIENT_STATUSES or status >= 500:
            raise DeliveryFailed(
                f"webhook {where} answered {status}",
                retry_after=parse_retry_after(response.headers.get("Retry-After"), self._clock()),
            )
        if status == 410:
            raise DeliveryFailed(f"webhook {where}: endpoint answered 410 Gone", gone=True)
        excerpt = (await read_capped(response)).decode("utf-8", errors="replace")
        # Scrubbed whole, then cut: a receiver echoing our secret or the signing headers back
        # (a debugging endpoint, a proxy's error page) leaves no piece of a secret behind.
        excerpt = " ".join(scrubber.scrub(excerpt).split())[:BODY_EXCERPT_CHARS]
        detail = f": {excerpt}" if excerpt else ""
        raise DeliveryFailed(f"webhook {where} answered {status}{detail}", permanent=True)


def _webhook(subscription: Subscription) -> WebhookSubscription:
    if subscription.kind != "webhook":
        raise DeliveryFailed(f"subscription {subscription.name!r} is not a webhook", permanent=True)
    return subscription


async def read_capped(response: aiohttp.ClientResponse, cap: int = BODY_READ_CAP) -> bytes:
    """At most ``cap`` bytes of the body; the rest is dropped with the connection."""
    chunks: list[bytes] = []
    remaining = cap
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
