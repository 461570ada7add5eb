"""What every request from Slack goes through before it may change anything: one check for the
slash command and the buttons alike, so both refuse the same forgeries.

Each request is checked with the app's signing secret (slack-sdk's ``SignatureVerifier``, which
also rejects timestamps more than five minutes off, so a captured request cannot be replayed
later), and a signature already answered is refused within that window; anything else gets 401
and changes nothing. Without a signing secret no request can be verified, so none is accepted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier

from notifier.config import Settings

# Slack sends a few hundred bytes (a button's payload a few kilobytes); anything much bigger is
# not Slack.
MAX_BODY: Final = 16 * 1024

REPLAY_WINDOW_SECONDS: Final = 5 * 60
"""slack-sdk's verifier accepts a timestamp this far off: a signature is remembered as long."""
_MAX_REMEMBERED: Final = 100_000

SlackHandler = Callable[[web.Request, bytes], Awaitable[web.Response]]
"""A handler given only requests Slack signed, with their body."""


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


def add_signed_route(
    app: web.Application,
    path: str,
    settings: Settings,
    handler: SlackHandler,
    *,
    what: str,
    verifier_clock: SignatureClock | None = None,
) -> None:
    """Serve ``POST path`` with ``handler`` behind the signature, window and replay checks.

    ``what`` names the feature in the answer when no signing secret is set ("slash commands").
    ``verifier_clock`` lets tests move time for the five-minute window.
    """
    secret = settings.slack.signing_secret
    if secret is None or not secret.get_secret_value():

        async def disabled(request: web.Request) -> web.Response:
            return web.Response(
                status=401, text=f"{what} are off: [slack] signing_secret is not set\n"
            )

        app.router.add_post(path, disabled)
        return
    verifier = SignatureVerifier(
        secret.get_secret_value(), **({"clock": verifier_clock} if verifier_clock else {})
    )
    app.router.add_post(path, _Signed(verifier, handler).handle)


class _Signed:
    def __init__(self, verifier: SignatureVerifier, handler: SlackHandler) -> None:
        self._verifier = verifier
        self._handler = handler
        self._seen = SeenSignatures()

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="request too large\n")
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="request too large\n")
        if not self._verified(request, body):
            return web.Response(status=401, text="invalid or stale Slack signature\n")
        signature = request.headers.get("X-Slack-Signature", "")
        if not self._seen.first_time(signature, time.time()):
            return web.Response(status=401, text="this request was already answered\n")
        return await self._handler(request, body)

    def _verified(self, request: web.Request, body: bytes) -> bool:
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        try:
            return self._verifier.is_valid(body, timestamp, signature)
        except ValueError:  # a timestamp that is not a number
            return False
