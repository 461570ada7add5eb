"""The webhook body: a public contract (DESIGN.md, "Webhook payload") that receivers parse.

Kept pure and separate from the sender so that the exact bytes that get signed are testable, and
so that a change to the contract shows up as a change to this file alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import orjson

from notifier.core.clock import as_utc
from notifier.core.events import Event
from notifier.core.status import JobStatus, state_name

# Bumped only for a change a receiver must handle (a field removed, renamed or retyped); added
# fields keep the version. docs/webhook-payload.schema.json describes this version.
PAYLOAD_VERSION: Final = 1


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
