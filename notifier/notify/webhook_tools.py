"""``notifier webhook test`` and ``notifier webhook verify``: trying a webhook before it matters.

``test`` sends a signed sample event through the real sink, so what it proves (URL, TLS, secret,
template, the receiver's answer) is what the service will do. ``verify`` is for the receiver's
side: given a captured request and the secret, it says whether and why the signature fails.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta

import aiohttp

from notifier.core.clock import utc_now
from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.subscriptions import WebhookSubscription
from notifier.core.urls import redact_url
from notifier.notify.samples import sample_event
from notifier.notify.signing import SignatureCheck, check_request, parse_raw_request
from notifier.notify.webhook import WebhookSink


async def send_test(subscription: WebhookSubscription, timeout_seconds: float) -> tuple[bool, str]:
    """Send a sample event to ``subscription``; (it worked, the line to print)."""
    name = subscription.name
    # Times around now, so the sample reads like a job that just failed rather than one that
    # failed at the sample's fixed date (receivers may order or age events by them).
    now = utc_now().replace(microsecond=0)
    sample = sample_event()
    current = replace(
        sample.current, eta=now + timedelta(minutes=6), updated=now - timedelta(seconds=4)
    )
    event = replace(sample, id=f"evt_test_{secrets.token_hex(8)}", occurred_at=now, current=current)
    where = redact_url(subscription.url)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_seconds)
    ) as session:
        sink = WebhookSink(session, timeout_seconds=timeout_seconds)
        started = time.perf_counter()
        try:
            status = await sink.send(event, subscription)
        except DeliveryFailed as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return False, f"{name}: failed after {elapsed:.0f} ms: {exc.reason}"
    elapsed = (time.perf_counter() - started) * 1000
    signed = f"{len(subscription.signing_secrets)} signature(s)"
    if not subscription.signing_secrets:
        signed = "unsigned"
    return True, f"{name}: {status} in {elapsed:.0f} ms ({where}, {signed}, webhook-id {event.id})"


def verify_raw(raw: bytes, secret: str, now: datetime) -> SignatureCheck:
    """Check a captured request (headers, blank line, body) against ``secret``."""
    try:
        headers, body = parse_raw_request(raw)
    except ValueError as exc:
        return SignatureCheck(False, (f"cannot read the request: {exc}",))
    return check_request(headers, body, secret, now)
