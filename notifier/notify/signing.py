"""Standard Webhooks signing for senders, and a signature check that explains itself to receivers.

Signing goes through the reference ``standardwebhooks`` implementation so that our bytes are the
ones every receiver library expects. During a secret rotation a subscription lists several
secrets and each request carries one ``v1,`` signature per secret, space-separated: receivers
still on the old secret and those already on the new one both verify.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import standardwebhooks
from standardwebhooks.webhooks import EmptyWebhookSecretError

from notifier.core.clock import as_utc

# Receivers reject timestamps further than this from their clock (the specification's advice).
TIMESTAMP_TOLERANCE_SECONDS: Final = 5 * 60


def standard_headers(
    msg_id: str, sent_at: datetime, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers (the signature only when there is a secret).

    Each secret adds one ``v1,`` signature, space-separated, made by the reference library's
    public ``Webhook.sign`` over the body's bytes as they are sent.
    """
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(as_utc(sent_at).timestamp()))}
    if secrets:
        headers["webhook-signature"] = " ".join(
            _signer(secret).sign(msg_id, sent_at, body) for secret in secrets
        )
    return headers


@functools.lru_cache(maxsize=256)
def _signer(secret: str) -> standardwebhooks.Webhook:
    """The library's signer for a secret; it decodes the ``whsec_`` key once."""
    return standardwebhooks.Webhook(secret)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a receiver needs to know about one request: each finding on its own line."""

    ok: bool
    findings: tuple[str, ...]


def check_request(
    headers: Mapping[str, str], body: bytes, secret: str, now: datetime
) -> SignatureCheck:
    """Check a received request the way a receiver library would, but say what is wrong.

    ``standardwebhooks`` only says "No matching signature found"; a receiver debugging a setup
    wants to know whether the secret, the body bytes or the clock is to blame.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    findings: list[str] = []
    missing = [
        name
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        if not lowered.get(name)
    ]
    if missing:
        return SignatureCheck(False, (f"missing header(s): {', '.join(missing)}",))
    msg_id = lowered["webhook-id"]
    try:
        sent_at = datetime.fromtimestamp(int(lowered["webhook-timestamp"]), UTC)
    except (ValueError, OverflowError):
        return SignatureCheck(
            False, (f"webhook-timestamp {lowered['webhook-timestamp']!r} is not Unix seconds",)
        )
    try:
        signer = standardwebhooks.Webhook(secret)
    except (ValueError, RuntimeError, EmptyWebhookSecretError):  # bad base64, or no key
        return SignatureCheck(False, ("the secret is not whsec_<base64>",))
    try:
        expected = signer.sign(msg_id, sent_at, body.decode("utf-8"))
    except UnicodeDecodeError:
        return SignatureCheck(False, ("the body is not UTF-8: it was changed on the way",))
    offered = lowered["webhook-signature"].split()
    signature_ok = expected in offered
    if signature_ok:
        position = offered.index(expected) + 1
        findings.append(f"signature: matches ({position} of {len(offered)} offered)")
    elif _matches_without_trailing_newline(signer, msg_id, sent_at, body, offered):
        findings.append(
            "signature: matches only without the body's trailing newline, which the sender "
            "did not sign: the capture or your framework added it; verify the exact bytes"
        )
    else:
        findings.append(
            f"signature: none of the {len(offered)} offered matches; expected {expected} "
            "(wrong secret, or the body bytes were changed: verify the raw body, "
            "not re-encoded JSON)"
        )
    age = (now - sent_at).total_seconds()
    timestamp_ok = abs(age) <= TIMESTAMP_TOLERANCE_SECONDS
    when = sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if timestamp_ok:
        findings.append(f"timestamp: {when}, {age:.0f} s old (within 5 minutes)")
    else:
        findings.append(
            f"timestamp: {when}, {age:.0f} s old: receivers reject more than 5 minutes off "
            "(a replayed request, or a clock that is wrong)"
        )
    return SignatureCheck(signature_ok and timestamp_ok, tuple(findings))


def _matches_without_trailing_newline(
    signer: standardwebhooks.Webhook,
    msg_id: str,
    sent_at: datetime,
    body: bytes,
    offered: Sequence[str],
) -> bool:
    stripped = body.rstrip(b"\r\n")
    if stripped == body:
        return False
    return signer.sign(msg_id, sent_at, stripped.decode("utf-8")) in offered


def parse_raw_request(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body from a request as captured (``nc -l``, a proxy log, curl's trace).

    The request line is optional; the body is everything after the first blank line, as bytes,
    since the signature covers exactly those bytes.
    """
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            break
    else:
        raise ValueError("no blank line between the headers and the body")
    headers: dict[str, str] = {}
    for number, line in enumerate(head.decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or " " in name.strip():
            if number == 1:
                continue  # the request line, "POST /hook HTTP/1.1"
            raise ValueError(f"header line {number} is not 'Name: value': {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "")
    if length.isdigit():
        body = body[: int(length)]  # a capture often ends with a newline the sender never sent
    return headers, body
