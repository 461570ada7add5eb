"""Webhook body templates: Jinja2 in a sandbox, with our event as context and JSON-safe output.

A template is written by whoever edits the config file, and the label it formats comes from
whoever names a watch: the sandbox keeps a template from reaching Python internals, the ``json``
filter keeps a quote in a label from breaking the receiver's JSON, and every rendered body is
checked to be JSON before it is sent. Templates are compiled and rendered against a sample of
every event type at config load, so a mistake is reported at start-up, not on the first failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.exceptions import SecurityError

from notifier.core.events import Event
from notifier.core.status import FAILED, SQUASHED
from notifier.notify.payload import webhook_payload
from notifier.notify.samples import sample_events
from notifier.notify.template_bounds import (
    MAX_RENDER_SECONDS,
    BoundedEnvironment,
    rendering_budget,
)


class TemplateProblem(ValueError):
    """A template that does not compile, fails on a sample event, or renders something not JSON."""


def _json(value: Any) -> str:
    """A JSON literal for ``value``: ``"text": {{ data.label | json }}`` is always valid JSON."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises the usual "has no attribute" error
    return json.dumps(value, ensure_ascii=False)


def _code_block(text: Any) -> str:
    """``text`` in a Markdown code fence that nothing inside can close early.

    Upstream error text is untrusted: inside a fence, chat services neither render its Markdown
    nor notify its ``@channel``/``@all``; a run of backticks in it would end the fence, so it
    becomes look-alike modifier letters.
    """
    body = str(text).replace("```", "\u02cb\u02cb\u02cb").strip("\n") or " "
    return f"```\n{body}\n```"


CHECK_SECONDS: Final = 2 * MAX_RENDER_SECONDS
"""The time every sample rendering of one check takes together, at most."""
MAX_OUTPUT_CHARS: Final = 256 * 1024
"""A body larger than this is no chat message; receivers cap far lower (Discord 2,000 chars)."""


_MARKDOWN_SPECIALS: Final = str.maketrans(
    {c: "\\" + c for c in "\\*_~`[]|>"} | {"<": "\u2039", "@": "@\u2060"}
)
_CHAT_LOOKALIKES: Final = str.maketrans(
    {
        "<": "\u2039",
        ">": "\u203a",
        "*": "\u2217",
        "_": "\u02cd",
        "~": "\u02dc",
        "`": "\u02cb",
        "@": "@\u2060",
    }
)


def markdown_text(text: Any) -> str:
    """``text`` (a label, a state name) shown as typed in Markdown chat (Mattermost, Discord,
    Teams): no link, emphasis or table cell can be built from it, and no ``@channel``/``@all``
    mention notifies anyone (a word joiner follows each ``@``)."""
    return str(text).translate(_MARKDOWN_SPECIALS)


def chat_text(text: Any) -> str:
    """The same for Google Chat, which has no backslash escapes: look-alike characters instead,
    and ``<users/all>`` cannot be formed."""
    return str(text).translate(_CHAT_LOOKALIKES)


def _environment() -> BoundedEnvironment:
    env = BoundedEnvironment(
        undefined=StrictUndefined,  # a misspelt field is an error at load, not an empty string
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.add_filter("json", _json)
    env.add_filter("code_block", _code_block)
    env.add_filter("markdown_text", markdown_text)
    env.add_filter("chat_text", chat_text)
    return env


_ENV = _environment()


def headline(payload: dict[str, Any]) -> str:
    """One human line for every preset: ``EU fleet, build 1.4.2: Running → Failed (80%)``."""
    data = payload["data"]
    name = data["label"] or f"image version {data['image_version_id']}"
    current = data["current"]
    previous = data["previous"]
    kind = payload["type"]
    if kind.startswith("watch."):
        what = "polling is failing" if kind == "watch.poll_failing" else "polling recovered"
        return f"{name}: {what}"
    moved = (
        f"{previous['state']} → {current['state']}"
        if previous is not None and previous["state"] != current["state"]
        else current["state"]
    )
    suffix = {
        "imageversion.stalled": ", stalled",
        "imageversion.resumed": ", moving again",
        "imageversion.eta_changed": ", ETA changed",
        "imageversion.overdue": ", overdue",
        "imageversion.progress": ", progress",
    }.get(kind, "")
    return f"{name}: {moved} ({current['progress']}%){suffix}"


def shown_error(payload: dict[str, Any]) -> str | None:
    """The job error worth showing: only once the job failed or was squashed. Upstream keeps a
    stale error on a job retried after a failure, which must not read as a new one (the Slack
    rendering follows the same rule)."""
    current = payload["data"]["current"]
    error = (current["error"] or "").strip()
    return error if error and current["state_id"] in (FAILED, SQUASHED) else None


def context(event: Event) -> dict[str, Any]:
    """What a template sees: the webhook payload's fields, ``event`` (the whole payload),
    ``headline`` and ``error`` (see :func:`shown_error`)."""
    payload = webhook_payload(event)
    return {
        **payload,
        "event": payload,
        "headline": headline(payload),
        "error": shown_error(payload),
    }


@lru_cache(maxsize=64)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


def render(source: str, event: Event, *, seconds: float = MAX_RENDER_SECONDS) -> bytes:
    """The body for ``event``: the rendered template, checked to be JSON, sent compact UTF-8.

    Within the bounds of template_bounds.py: a rendering takes at most ``seconds`` (half a
    second) and one bounded operation more; callers on the event loop run it in a worker thread.
    """
    try:
        with rendering_budget(seconds):
            text = _bounded_text(_compiled(source).generate(context(event)))
    except Exception as exc:  # user-written code: any error it raises is the template's fault
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TemplateProblem(
            f"renders invalid JSON for {event.type} ({exc}); use the json filter for values"
        ) from None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _bounded_text(chunks: Iterator[str]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise SecurityError(f"output longer than {MAX_OUTPUT_CHARS} characters")
        parts.append(chunk)
    return "".join(parts)


def check_template(source: str) -> None:
    """Raise :class:`TemplateProblem` unless ``source`` renders JSON for every sample event."""
    try:
        _compiled(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise TemplateProblem(f"does not compile{where}: {exc}") from None
    # Every sample together within the time of two renderings: a template that only just keeps
    # to the bound does not make check-config (or an API request) wait a dozen times as long.
    deadline = time.monotonic() + CHECK_SECONDS
    for event in sample_events():
        try:
            render(source, event, seconds=max(deadline - time.monotonic(), 0.0))
        except TemplateProblem as exc:
            raise TemplateProblem(f"fails on a sample {event.type} event: {exc}") from None
