"""The webhook body: a public contract (DESIGN.md, "Webhook payload") that receivers parse.

Kept pure and separate from the sender so that the exact bytes that get signed are testable, and
so that a change to the contract shows up as a change to this file alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import orjson

from notifier.core.clock import as_utc
from notifier.core.digest import OUTCOMES, DailyDigest
from notifier.core.events import DIGEST_DAILY, Event
from notifier.core.status import JobStatus, state_name

# Bumped only for a change a receiver must handle (a field removed, renamed or retyped, or a
# new required one); docs/webhook-payload.schema.json describes this version. 2: ``data.owners``
# on every event, and the ``digest.daily`` type.
PAYLOAD_VERSION: Final = 2


def webhook_payload(event: Event) -> dict[str, Any]:
    """``{type, version, timestamp, data}`` per the Standard Webhooks payload shape.

    Null where unknown.
    """
    previous: dict[str, Any] | None = None
    if event.previous is not None:
        previous = {
            "state_id": event.previous.state_id,
            "state": _state(event.previous),
            "progress": event.previous.progress,
        }
    status = event.current
    current: dict[str, Any] = {
        "state_id": status.state_id,
        "state": _state(status),
        "progress": status.progress,
        "error": status.error or None,
        "eta": rfc3339(status.eta),
        "failed_count": status.failed_count,
        "updated": rfc3339(status.updated),
    }
    if status.eta_estimated:
        current["eta_estimated"] = True
    data: dict[str, Any] = {
        "account_service_id": event.account_service_id,
        "image_version_id": event.image_version_id,
        "label": event.label,
        "owners": list(event.owners),
        "previous": previous,
        "current": current,
    }
    if event.detail:
        data["detail"] = dict(event.detail)
    return {
        "type": event.type,
        "version": PAYLOAD_VERSION,
        "timestamp": rfc3339(event.occurred_at),
        "data": data,
    }


def digest_payload(digest: DailyDigest) -> dict[str, Any]:
    """A ``digest.daily`` body: the day's jobs, each with its outcome and how long it took."""
    return {
        "type": DIGEST_DAILY,
        "version": PAYLOAD_VERSION,
        "timestamp": rfc3339(digest.window_end),
        "data": {
            "day": digest.day,
            "window_start": rfc3339(digest.window_start),
            "window_end": rfc3339(digest.window_end),
            "counts": {outcome: len(digest.of(outcome)) for outcome in OUTCOMES},
            "jobs": [
                {
                    "account_service_id": item.account_service_id,
                    "image_version_id": item.image_version_id,
                    "label": item.label,
                    "outcome": item.outcome,
                    "state": item.state,
                    "progress": item.progress,
                    "duration_seconds": item.seconds,
                    "error": item.error,
                }
                for item in digest.items
            ],
        },
    }


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: these exact bytes are signed, so they must not be re-serialised later.

    orjson writes the same bytes as ``json.dumps(ensure_ascii=False, separators=(",", ":"))``;
    a property test holds the two together.
    """
    return orjson.dumps(payload)


def rfc3339(moment: datetime | None) -> str | None:
    """``2026-11-28T17:04:05Z``: UTC, second precision; a naive time is taken to be UTC."""
    if moment is None:
        return None
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _state(status: JobStatus) -> str:
    """The documented name for a known state id, so ``state`` and ``state_id`` always agree."""
    return state_name(status.state_id, fallback=status.state)
