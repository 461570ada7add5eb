"""A request body signed the way Slack signs what it sends (slash commands, button clicks)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


def slack_signed(
    form: Mapping[str, str], secret: str, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """``form`` url-encoded, with Slack's timestamp (now, or ``at``) and signature headers."""
    body = urlencode(dict(form)).encode()
    timestamp = str(int(at if at is not None else time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return body, {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
