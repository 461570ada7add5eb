"""The one place where an upstream reply becomes a :class:`JobStatus` or an :class:`UpstreamError`.

Kept pure (status, body and headers in; model or error out) so every quirk of the real API listed
in ``clanforge-api.md`` can be pinned down by a table test and fuzzed, without a server.

Policy, decided once here:

* A reply is only an error when it cannot describe the job: not a JSON object, ``success: false``,
  the wrong image version, or neither ``jobstateid`` nor ``jobstatename`` usable. Everything else
  that is optional, null or garbled degrades to a neutral value (no time, no error, progress 0)
  rather than failing the whole poll, because a failing poll hides real transitions.
* Integer fields accept what loosely typed APIs send for integers (``4``, ``4.0``, ``"4"``) and
  refuse booleans: ``true`` is not 1 here, it is a wrong type.
* When ``jobstateid`` and ``jobstatename`` disagree, the id wins: it is the machine field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from notifier.core.retry_after import parse_retry_after
from notifier.core.status import STATE_NAMES, JobStatus, state_id_for_name
from notifier.core.upstream_errors import (
    ACCESS_DENIED,
    BAD_REPLY,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UpstreamError,
)
from notifier.core.urls import redact_url

MAX_UPSTREAM_TEXT: Final = 200
"""Upstream's own error text is quoted in our one-line messages up to this many characters."""
MAX_JOB_ERROR: Final = 2000
"""``joberror`` is free text; longer ones are cut so a runaway upstream cannot bloat events."""

MAX_RETRY_AFTER: Final = 86_400.0
"""A longer ``Retry-After`` is taken as garbage-in and capped, so no watch is parked for months."""

# Unix seconds outside this range are garbage (or milliseconds): year 1970 to 9999.
_MAX_UNIX_SECONDS: Final = 253_402_300_799

_INT_TEXT = re.compile(r"[+-]?\d{1,20}")
_NUMBER_TEXT = re.compile(r"[+-]?\d{1,20}(?:\.\d{1,20})?")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_ERROR_KEYS: Final = ("error", "message", "errors", "error_description", "detail", "msg")

_STATUS_EXPLANATIONS: Final[dict[int, tuple[str, str]]] = {
    401: (CREDENTIALS_REJECTED, "credentials rejected (check clanforge.access_key/secret_key)"),
    403: (ACCESS_DENIED, "access denied (the keys may not see this account service)"),
    404: (NOT_FOUND, "image version not found"),
    408: (UNAVAILABLE, "request timed out upstream"),
    429: (RATE_LIMITED, "rate limited"),
}


def parse_status_reply(
    status: int,
    body: bytes,
    *,
    account_service_id: int,
    image_version_id: int,
    retry_after: str | None = None,
    now: datetime | None = None,
    location: str | None = None,
) -> JobStatus:
    """The job status an HTTP reply describes; raises :class:`UpstreamError` when there is none.

    ``retry_after`` is the raw ``Retry-After`` header, ``location`` the raw ``Location`` of a
    redirect (only used to word the message), ``now`` the clock for HTTP-date ``Retry-After``.
    """
    subject = f"image version {image_version_id} (account service {account_service_id})"
    data = _reply_object(_Answer(status, body, subject, retry_after, now, location))
    return _job_status(data, status, subject, image_version_id)


def reply_digest(body: bytes) -> bytes:
    """A short fingerprint of a reply body: two replies with the same one say the same thing.

    Compared before parsing, it settles the common poll (nothing changed) without a parse.
    """
    return hashlib.blake2b(body, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP reply as it came, with what it was about (``subject``, for the messages)."""

    status: int
    body: bytes
    subject: str
    retry_after: str | None
    """The raw ``Retry-After`` header; ``now`` is the clock for its HTTP-date form."""
    now: datetime | None
    location: str | None
    """The raw ``Location`` of a redirect, only used to word the message."""


def _reply_object(answer: _Answer) -> dict[str, Any]:
    """The JSON object of a successful reply, or the :class:`UpstreamError` that says why not."""
    status, body, subject = answer.status, answer.body, answer.subject
    if not 200 <= status < 300:
        raise _http_error(answer)
    data = _decode_json(body)
    if data is _NOT_JSON:
        raise UpstreamError(
            BAD_REPLY,
            f"Clanforge answered {status} for {subject} with {_describe_non_json(body)}",
            status=status,
        )
    if not isinstance(data, dict):
        raise UpstreamError(
            BAD_REPLY,
            f"Clanforge answered {status} for {subject} with JSON {_json_kind(data)}, "
            "not an object",
            status=status,
        )
    return data


# --- error replies -------------------------------------------------------------------------------


def _http_error(answer: _Answer) -> UpstreamError:
    status = answer.status
    if status in _STATUS_EXPLANATIONS:
        reason, explanation = _STATUS_EXPLANATIONS[status]
    elif 300 <= status < 400:
        # The real service redirects plain HTTP to HTTPS; following it would resend the Basic
        # header to wherever Location points, so we stop and say what to fix instead.
        reason = BAD_REPLY
        target = _safe_location(answer.location)
        explanation = (
            f"redirect{f' to {target}' if target else ''} not followed "
            "(check clanforge.base_url, it should be the https:// address)"
        )
    elif status >= 500:
        reason, explanation = UNAVAILABLE, "upstream error"
    else:
        reason, explanation = BAD_REPLY, "unexpected HTTP status"
    text = _upstream_text(answer.body)
    message = f"Clanforge answered {status} for {answer.subject}: {explanation}"
    if text:
        message += f": {text}"
    return UpstreamError(
        reason,
        message,
        status=status,
        retry_after=parse_retry_after(answer.retry_after, answer.now, cap=MAX_RETRY_AFTER),
    )


def _safe_location(location: str | None) -> str:
    """The redirect target without user info or query: enough to spot http vs https."""
    if not location:
        return ""
    return _one_line(redact_url(location, path="keep"), 120)


def _upstream_text(body: bytes) -> str:
    """Upstream's own words about the failure, if the body has any, as one short line."""
    if not body.strip():
        return ""
    data = _decode_json(body)
    if data is not _NOT_JSON:
        return _one_line(_error_text_from_json(data), MAX_UPSTREAM_TEXT)
    text = body[:65536].decode("utf-8", errors="replace")
    title = _HTML_TITLE.search(text)
    if title is not None:
        return _one_line(_TAG.sub(" ", title.group(1)), MAX_UPSTREAM_TEXT)
    if _looks_like_html(body):
        return _one_line(_TAG.sub(" ", text), MAX_UPSTREAM_TEXT)
    return _one_line(text, MAX_UPSTREAM_TEXT)


def _error_text_from_json(data: Any, depth: int = 0) -> str:
    if depth > 3:
        return ""
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        parts = (_error_text_from_json(item, depth + 1) for item in data[:5])
        return "; ".join(part for part in parts if part)
    if isinstance(data, dict):
        for key in _ERROR_KEYS:
            value = data.get(key)
            if value not in (None, "", [], {}, False, True):
                text = _error_text_from_json(value, depth + 1)
                if text:
                    return text
        if "code" in data and isinstance(data["code"], (str, int)) and depth > 0:
            return f"code {data['code']}"
    return ""


def _one_line(text: str, limit: int) -> str:
    # Every poll passes the state name through here: skip the per-character pass when clean.
    printable = text if text.isprintable() else "".join(c if c.isprintable() else " " for c in text)
    cleaned = _SPACE.sub(" ", printable).strip()
    if len(cleaned) > limit:
        return cleaned[: limit - 1].rstrip() + "…"
    return cleaned


# --- success replies -----------------------------------------------------------------------------


def parse_install_status_reply(
    status: int,
    body: bytes,
    *,
    account_service_id: int,
    retry_after: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """The image versions being installed under an account service, each once, in reply order.

    The reply is ``{"installs": [{..., "target_imageversionid": N}, ...]}``: one entry per machine,
    so the same image version shows up many times. An entry without a usable id is skipped (it
    names nothing to watch); a reply that is not that shape is an :class:`UpstreamError`.
    """
    subject = f"image installs of account service {account_service_id}"
    data = _reply_object(_Answer(status, body, subject, retry_after, now, None))
    success = data.get("success")
    if success is False or _is_false_text(success):
        text = _one_line(_error_text_from_json(data), MAX_UPSTREAM_TEXT)
        raise UpstreamError(
            BAD_REPLY,
            f"Clanforge answered {status} for {subject}: success is false"
            + (f": {text}" if text else ""),
            status=status,
        )
    installs = data.get("installs", [])
    if installs is None:
        installs = []
    if not isinstance(installs, list):
        raise UpstreamError(
            BAD_REPLY,
            f"Clanforge answered {status} for {subject}: installs is {_json_kind(installs)}, "
            "not a list",
            status=status,
        )
    found: dict[int, None] = {}
    for entry in installs:
        if isinstance(entry, dict):
            target = _as_int(entry.get("target_imageversionid"))
            if target is not None and target > 0:
                found[target] = None
    return list(found)


class _NotJson:
    pass


_NOT_JSON: Final = _NotJson()


def _decode_json(body: bytes) -> Any:
    try:
        # orjson first: a quarter of json.loads' time, on every changed reply.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # What orjson refuses and json reads (integers beyond 64 bits, NaN, UTF-16) keeps the
    # meaning it always had: a reply with a silly field degrades that field, not the reply.
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, bad UTF-8 and integers too long to convert.
        return _NOT_JSON


def _looks_like_html(body: bytes) -> bool:
    # Any markup will do: error pages from proxies are not always well-formed HTML documents.
    return body.lstrip()[:1].startswith(b"<")


def _describe_non_json(body: bytes) -> str:
    if not body.strip():
        return "an empty body instead of JSON"
    if _looks_like_html(body):
        text = _upstream_text(body)
        return "an HTML page instead of JSON" + (f": {text}" if text else "")
    return "a body that is not valid JSON (truncated or garbled)"


def _json_kind(data: Any) -> str:
    if isinstance(data, list):
        return "an array"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool):
        return "a boolean"
    if data is None:
        return "null"
    return "a number"


def _job_status(
    data: dict[str, Any], status: int, subject: str, image_version_id: int
) -> JobStatus:
    def bad(problem: str) -> UpstreamError:
        return UpstreamError(
            BAD_REPLY, f"Clanforge answered {status} for {subject}: {problem}", status=status
        )

    success = data.get("success")
    if success is not True and (
        success is False or _as_int(success) == 0 or _is_false_text(success)
    ):
        text = _one_line(_error_text_from_json(data), MAX_UPSTREAM_TEXT)
        raise bad("success is false" + (f": {text}" if text else ""))

    if "imageversionid" in data and data["imageversionid"] is not None:
        replied = _as_int(data["imageversionid"])
        if replied is None:
            raise bad(f"imageversionid is not an integer ({_short_repr(data['imageversionid'])})")
        if replied != image_version_id:
            raise bad(f"reply is for image version {replied}, not the one asked for")

    state_id = _as_int(data.get("jobstateid"))
    if state_id is not None and state_id <= 0:
        state_id = None  # state ids start at 1; 0 is how loosely typed APIs say "none"
    raw_name = data.get("jobstatename")
    upstream_name = _one_line(raw_name, 100) if isinstance(raw_name, str) else ""

    if state_id is not None:
        state = STATE_NAMES.get(state_id) or upstream_name or "Unknown"
    elif upstream_name:
        state_id = state_id_for_name(upstream_name)
        state = STATE_NAMES[state_id] if state_id is not None else upstream_name
    else:
        raise bad("reply has neither jobstateid nor jobstatename")

    progress = _as_number(data.get("jobprogress"))
    failed = _as_int(data.get("jobfailed"))
    return JobStatus(
        image_version_id=image_version_id,
        state_id=state_id,
        state=state,
        progress=0 if progress is None else min(max(int(progress), 0), 100),
        eta=_as_time(data.get("jobeta")),
        error=_job_error(data.get("joberror")),
        failed_count=failed if failed is not None and failed > 0 else 0,
        created=_as_time(data.get("jobcreated")),
        started=_as_time(data.get("jobstart")),
        updated=_as_time(data.get("jobupdated")),
    )


def _as_int(value: Any) -> int | None:
    """An integer from a loosely typed field; None for anything else, booleans included."""
    if type(value) is int:  # the common case first: this runs several times per poll
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(min(max(value, -1), 101))  # clamped later; avoids huge-int float overflow
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return float(value)
    return None


def _as_time(value: Any) -> datetime | None:
    """Unix seconds (number or digit string) as aware UTC; 0, empty and absurd values are None."""
    if type(value) is int:  # the common case first: four of these per poll
        return datetime.fromtimestamp(value, UTC) if 0 < value <= _MAX_UNIX_SECONDS else None
    # Integers are compared as they are: a huge one must not overflow on the way to float.
    plain_int = isinstance(value, int) and not isinstance(value, bool)
    seconds: float | None = value if plain_int else _as_number(value)
    if seconds is None or not 0 < seconds <= _MAX_UNIX_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _job_error(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    if not text:
        return None
    return text if len(text) <= MAX_JOB_ERROR else text[: MAX_JOB_ERROR - 1] + "…"


def _short_repr(value: Any) -> str:
    return _one_line(repr(value), 40)


def _is_false_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "false"
