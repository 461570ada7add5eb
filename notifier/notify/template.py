"""Webhook body templates: Jinja2 in a sandbox, with our event as context and JSON-safe output.

A template is written by whoever edits the config file, and the label it formats comes from
whoever names a watch: the sandbox keeps a template from reaching Python internals, the ``json``
filter keeps a quote in a label from breaking the receiver's JSON, and every rendered body is
checked to be JSON before it is sent. Templates are compiled and rendered against a sample of
every event type at config load, so a mistake is reported at start-up, not on the first failure.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from notifier.core.events import Event
from notifier.core.status import FAILED, SQUASHED
from notifier.notify.payload import webhook_payload
from notifier.notify.samples import sample_events


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


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,  # a misspelt field is an error at load, not an empty string
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["json"] = _json
    env.filters["code_block"] = _code_block
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


def render(source: str, event: Event) -> bytes:
    """The body for ``event``: the rendered template, checked to be JSON, sent compact UTF-8."""
    try:
        text = _compiled(source).render(context(event))
    except Exception as exc:  # user-written code: any error it raises is the template's fault
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TemplateProblem(
            f"renders invalid JSON for {event.type} ({exc}); use the json filter for values"
        ) from None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_template(source: str) -> None:
    """Raise :class:`TemplateProblem` unless ``source`` renders JSON for every sample event."""
    try:
        _compiled(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise TemplateProblem(f"does not compile{where}: {exc}") from None
    for event in sample_events():
        try:
            render(source, event)
        except TemplateProblem as exc:
            raise TemplateProblem(f"fails on a sample {event.type} event: {exc}") from None
