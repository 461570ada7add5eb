"""A body template written to hang or exhaust the service (or check-config) is refused quickly,
at load, with a line saying which bound it hit."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from notifier.config import ConfigError, parse_config
from notifier.notify.presets import PRESETS
from notifier.notify.samples import sample_event
from notifier.notify.template import TemplateProblem, check_template, render
from notifier.notify.template_bounds import MAX_RENDER_SECONDS

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
    # One short call building gigabytes (issue 22: found while moving rendering off the loop).
    ('{"t": {{ ("x" * 4096) | replace("x", "y" * 4096) | length }}}', "replace() would build"),
    ('{"t": {{ "x" | center(50000000) | length }}}', "a number larger than 65536"),
    ('{"t": {{ "x".ljust(100000000) | length }}}', "a number larger than 65536"),
    ('{"t": {{ ("%050000000d" % 1) | length }}}', "format width"),
    ('{"t": {{ ("%0999999d" % 1) | length }}}', "format width"),
    ('{"t": {{ "{:>50000000}".format(1) | length }}}', "format width"),
    ('{"t": {{ ("{:{w}}" * 9000).format(1, w=60000) | length }}}', "format() would build"),
    ('{"t": {{ ("a\n" * 30000) | indent(60000) | length }}}', "indent() would build"),
    ('{"t": {{ ("x" * 60000).translate({120: "y" * 60000}) | length }}}', "would build"),
    ('{"t": {{ ([("x" * 60000)] * 2) | join("y" * 60000) | length }}}', "join() would build"),
    # Growing a value step by step, where no single step is large.
    (
        '{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}'
        '{% endfor %}{"t": {{ ns.s | length }}}',
        "a value longer than 262144",
    ),
    (
        '{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}'
        '{% endfor %}{"t": {{ ns.s | length }}}',
        "a value longer than 262144",
    ),
    ("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}{}", "unsafe"),
    # Text written where the body's bound does not see it: a block, a macro.
    (
        '{% set s = "x" * 60000 %}{% set acc %}{% for i in range(1000) %}{{ s }}{% endfor %}'
        '{% endset %}{"t": {{ acc | length }}}',
        "characters written",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        '{"t": "{{ f(40) }}"}',
        "SecurityError",  # more than 100000 calls, or the deadline: whichever comes first
    ),
    # Loops over anything, not only range(), draw on the iteration budget.
    (
        '{% for c in "x" * 60000 %}{% for d in "x" * 60000 %}{% endfor %}{% endfor %}{}',
        "iterations",
    ),
    ('{"t": {{ lipsum(100000) | length }}}', "lipsum' is undefined"),
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


# Within every count, a template can still spend its time: each rendering stops at the deadline.
SLOWEST = (
    '{% set s = "x" * 60000 %}{"n": [{% for i in range(1000) %}{% for j in range(9) %}'
    '{{ (s | replace("x", "yy")) | length }},{% endfor %}{% endfor %}0]}'
)


def test_a_template_that_keeps_every_count_still_stops_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        render(SLOWEST, sample_event())
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 0.5
    assert "rendering took longer than 0.5 s" in str(caught.value)


def test_check_config_spends_at_most_two_renderings_on_every_sample_together() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateProblem):
        check_template(SLOWEST)
    assert time.monotonic() - started < 2 * MAX_RENDER_SECONDS + 0.5


async def test_the_event_loop_keeps_turning_while_the_slowest_template_renders() -> None:
    """What the sink does (asyncio.to_thread): the loop's other work waits milliseconds."""
    lags: list[float] = []
    rendering = asyncio.create_task(asyncio.to_thread(render, SLOWEST, sample_event()))
    while not rendering.done():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - before)
    with pytest.raises(TemplateProblem):
        await rendering
    assert len(lags) > 10
    assert max(lags) < 0.25


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ('{"t": {{ ("build 123456789: %s" % "ok") | json }}}', b'{"t":"build 123456789: ok"}'),
        ('{"t": {{ "build 123456789 {}".format("ok") | json }}}', b'{"t":"build 123456789 ok"}'),
        ('{"t": {{ "%d" | format(3447003) }}}', b'{"t":3447003}'),
        ('{"t": {{ {"a": 13632027}.get("a", 3447003) }}}', b'{"t":13632027}'),
        ('{"t": {{ ("%*d" % (8, 1)) | json }}}', b'{"t":"       1"}'),
    ],
)
def test_numbers_that_are_not_widths_and_small_widths_render(source: str, body: bytes) -> None:
    """Colours, ids and digits in text are values: only widths and counts are bounded."""
    assert render(source, sample_event()) == body
