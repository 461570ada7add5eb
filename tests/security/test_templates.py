"""A body template written to hang or exhaust the service (or check-config) is refused quickly,
at load, with a line saying which bound it hit."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from notifier.config import ConfigError, parse_config
from notifier.notify.presets import PRESETS
from notifier.notify.samples import sample_event
from notifier.notify.template import TemplateProblem, check_template, render

HOSTILE = [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{}", "range"),
    (
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}{}",
        "iterations",
    ),
    ('{"a": {{ ("x" * 1000000000) | json }}}', "repetition"),
    ('{"a": {{ [1] * 100000000 }}}', "repetition"),
    ('{"a": {{ 9 ** 9 ** 9 ** 9 ** 9 ** 9 ** 9 ** 9 ** 9 ** 9 ** 9 }}}', "power"),
    (
        '{"a": "{% for i in range(1000) %}{{ "y" * 60000 }}{% endfor %}"}',
        "output longer",
    ),
]


@pytest.mark.parametrize(("source", "bound"), HOSTILE)
def test_a_runaway_template_is_refused_within_a_second(source: str, bound: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        check_template(source)
    assert time.monotonic() - started < 1.0
    assert bound in str(caught.value)


def test_check_config_names_the_template_that_would_hang() -> None:
    text = (
        '[clanforge]\naccess_key = "a"\nsecret_key = "s"\n'
        '[[subscription]]\nname = "t"\nwebhook_url = "https://chat.example.com/h"\n'
        "template = '''" + HOSTILE[0][0] + "'''\n"
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, {}, "notifier.toml")
    assert time.monotonic() - started < 2.0
    assert "subscription[0].template" in str(caught.value)


def test_ordinary_loops_and_every_preset_still_render() -> None:
    source = (
        '{"n": [{% for i in range(10) %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}]}'
    )
    assert render(source, sample_event()) == b'{"n":[0,1,2,3,4,5,6,7,8,9]}'
    for preset in PRESETS.values():
        check_template(preset)


HOSTILE_LABEL = (
    "@channel @all <users/all> <!here> [click](https://evil.example) "
    "<https://evil.example|go> **bold** | x"
)
HOSTILE_STATE = "Running <users/all> @here [x](https://evil.example)"


@pytest.mark.parametrize("preset", ["mattermost", "google_chat", "discord", "teams"])
def test_a_label_or_state_name_cannot_mention_everyone_or_make_a_link(preset: str) -> None:
    event = sample_event()
    event = replace(event, label=HOSTILE_LABEL, current=replace(event.current, state=HOSTILE_STATE))
    body = json.loads(render(PRESETS[preset], event))
    # The text each chat formats as Markdown (or Chat markup).
    if preset == "discord":
        shown = body["content"]
    elif preset == "teams":
        shown = body["attachments"][0]["content"]["body"][0]["text"]
    else:
        shown = body["text"]
    for mention in ("@channel", "@all", "@here", "<users/all>", "<!here>"):
        assert mention not in shown
    if preset == "google_chat":  # Chat's links are <url|text>, Markdown's [text](url) is text
        assert "<https://" not in shown
    else:
        assert "[click](" not in shown
        assert "[x](" not in shown
    assert "**bold**" not in shown
