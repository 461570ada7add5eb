"""Body templates and the built-in presets: golden bodies each chat service accepts, JSON-safe
values, a sandbox, and mistakes caught when the configuration is loaded."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.config import ConfigError, parse_config
from notifier.core.events import Event
from notifier.core.status import QUEUED, RUNNING
from notifier.notify.presets import PRESETS
from notifier.notify.samples import sample_event, sample_events
from notifier.notify.template import (
    TemplateProblem,
    chat_text,
    check_template,
    markdown_text,
    render,
)
from tests.conftest import make_status

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "webhook_presets"
UPDATE_VAR = (
    "NOTIFIER_UPDATE_GOLDEN"  # set to 1 to rewrite the golden files after a reviewed change
)

HOSTILE_LABEL = 'Say "hi" \\ {{ 7*7 }} @everyone <b>x</b>\nnext line'


def _first_sighting() -> Event:
    return replace(
        sample_event(),
        type="imageversion.state_changed",
        previous=None,
        current=make_status(QUEUED, 0, eta=None, image_version_id=567890),
    )


CASES = {"failed": sample_event, "first_sighting": _first_sighting}


def _render(preset: str, event: Event) -> Any:
    return json.loads(render(PRESETS[preset], event))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_renders_its_golden_body(preset: str, case: str) -> None:
    body = _render(preset, CASES[case]())
    golden = GOLDEN / f"{preset}.{case}.json"
    if os.environ.get(UPDATE_VAR) == "1":
        golden.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert body == json.loads(golden.read_text(encoding="utf-8"))


def _accepted_by_discord(body: Any) -> None:
    # Discord's execute-webhook limits: content 2,000; up to 10 embeds; title 256; field name
    # 256 and value 1,024, neither empty; colour a 24-bit integer.
    assert isinstance(body["content"], str)
    assert 0 < len(body["content"]) <= 2000
    assert body["allowed_mentions"] == {"parse": []}
    assert len(body["embeds"]) <= 10
    for embed in body["embeds"]:
        assert 0 < len(embed["title"]) <= 256
        assert 0 <= embed["color"] <= 0xFFFFFF
        for item in embed["fields"]:
            assert 0 < len(item["name"]) <= 256
            assert 0 < len(item["value"]) <= 1024


def _accepted_by_teams(body: Any) -> None:
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    for element in card["body"]:
        assert element["type"] in {"TextBlock", "FactSet"}
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str)
            assert element["text"]
        else:
            assert all(isinstance(f["title"], str) for f in element["facts"])
            assert all(isinstance(f["value"], str) and f["value"] for f in element["facts"])


def _accepted_by_text_hook(limit: int) -> Any:
    def check(body: Any) -> None:
        assert set(body) == {"text"}
        assert isinstance(body["text"], str)
        assert 0 < len(body["text"]) <= limit

    return check


ACCEPTS = {
    "discord": _accepted_by_discord,
    "teams": _accepted_by_teams,
    "mattermost": _accepted_by_text_hook(16383),
    "google_chat": _accepted_by_text_hook(4096),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_body_has_the_shape_the_service_accepts_for_every_event_type(preset: str) -> None:
    huge_error = replace(
        sample_event(), current=replace(sample_event().current, error="E" * 50_000)
    )
    for event in [*sample_events(), huge_error]:
        ACCEPTS[preset](_render(preset, event))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_hostile_label_stays_inside_its_json_string(preset: str) -> None:
    body = _render(preset, replace(sample_event(), label=HOSTILE_LABEL))
    assert any(_shows(text, HOSTILE_LABEL) for text in _strings(body))
    assert "49" not in json.dumps(body)  # the label is data, never evaluated as a template


def _shows(text: str, label: str) -> bool:
    """The label is in ``text`` as typed, or as a chat's Markdown shows it typed (escaped so
    that it forms no link, emphasis or mention: issue 22)."""
    return any(form in text for form in (label, markdown_text(label), chat_text(label)))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_json_filter_makes_any_value_a_json_literal() -> None:
    body = render(
        '{"label": {{ data.label | json }}, "previous": {{ data.previous | json }}}',
        replace(sample_event(), label=HOSTILE_LABEL, previous=None),
    )
    assert json.loads(body) == {"label": HOSTILE_LABEL, "previous": None}


def test_template_context_has_payload_fields_event_and_headline() -> None:
    body = render(
        '{"t": {{ type | json }}, "v": {{ version }}, "same": {{ (event.data == data) | json }},'
        ' "h": {{ headline | json }}}',
        sample_event(),
    )
    assert json.loads(body) == {
        "t": "imageversion.failed",
        "v": 2,
        "same": True,
        "h": "EU fleet, build 1.4.2: Running → Failed (80%)",
    }


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('{"text": {{ data.lable | json }}}', "'dict object' has no attribute 'lable'"),
        ('{"text": {{ "".__class__.__mro__ | json }}}', "SecurityError"),
        ('{"text": {{ data.label }}}', "renders invalid JSON"),
        ('{"text": {{ data.previous.state | json }}}', "fails on a sample"),
        ('{"text": {% if %}}', "does not compile at line 1"),
    ],
)
def test_template_mistakes_are_found_before_any_event(source: str, problem: str) -> None:
    with pytest.raises(TemplateProblem, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_template(source)


CONFIG = """
[clanforge]
access_key = "a"
secret_key = "s"

[[subscription]]
name = "hook"
webhook_url = "https://chat.example.com/hook"
{extra}
"""


def test_a_template_error_is_a_config_error_naming_the_subscription_key() -> None:
    extra = "template = '''{\"text\": {{ data.lable | json }}}'''"
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.format(extra=extra), {}, "notifier.toml")
    message = str(caught.value)
    assert message.startswith("notifier.toml: subscription[0].template: template fails on a sample")
    assert "lable" in message
    assert "\n" not in message


def test_a_preset_and_a_template_together_are_refused() -> None:
    extra = "preset = \"discord\"\ntemplate = '{}'"
    with pytest.raises(ConfigError, match="give template or preset, not both"):
        parse_config(CONFIG.format(extra=extra), {}, "notifier.toml")


def test_an_unknown_preset_is_a_config_error_listing_the_presets() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.format(extra='preset = "slack"'), {}, "notifier.toml")
    assert "subscription[0].preset" in str(caught.value)
    assert "'discord'" in str(caught.value)
    assert "'slack'" in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(label=st.text(max_size=300), error=st.text(min_size=1, max_size=300))
def test_any_label_and_error_text_render_valid_json_in_every_preset(label: str, error: str) -> None:
    base = sample_event()
    event = replace(base, label=label, current=replace(base.current, error=error))
    for preset, accepts in ACCEPTS.items():
        body = _render(preset, event)
        accepts(body)
        if label:
            assert any(_shows(text, label) for text in _strings(body)), preset


HOSTILE_ERROR = "disk full @channel @all <users/all> <!here>\n```\n**not bold** ``` end"


@pytest.mark.parametrize("preset", ["mattermost", "google_chat"])
def test_an_upstream_error_cannot_mention_everyone_or_escape_its_code_block(preset: str) -> None:
    event = sample_event()
    event = replace(event, current=replace(event.current, error=HOSTILE_ERROR))

    text = _render(preset, event)["text"]

    # The error sits in the one fenced block at the end, which nothing inside it can close.
    before, fence, inside = text.partition("```\n")
    assert fence
    assert inside.endswith("\n```")
    assert "```" not in inside.removesuffix("\n```")
    assert "@channel @all" in inside
    assert "**not bold**" in inside
    assert "@channel" not in before
    if preset == "google_chat":  # Chat reads <users/all> as a mention of everyone
        assert "<users/all>" not in text


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_stale_error_on_a_job_retried_after_a_failure_is_not_shown(preset: str) -> None:
    # Upstream keeps the old error when a failed job is retried and runs again.
    running = make_status(RUNNING, 30, error="Image locked by diffid 42", image_version_id=567890)
    event = replace(sample_event(), type="imageversion.state_changed", current=running)

    body = json.dumps(_render(preset, event), ensure_ascii=False)

    assert "Image locked" not in body
    assert "Image locked by diffid 42" in json.dumps(
        _render(preset, sample_event()), ensure_ascii=False
    )


@pytest.mark.parametrize("preset", ["mattermost", "google_chat"])
def test_a_huge_error_is_cut_inside_its_code_block_which_stays_closed(preset: str) -> None:
    event = sample_event()
    event = replace(event, current=replace(event.current, error="x" * 50_000))

    text = _render(preset, event)["text"]

    assert text.endswith("…\n```")
