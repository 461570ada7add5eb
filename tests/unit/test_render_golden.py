"""The Block Kit JSON of the live message, pinned: any change in layout shows up in review.

Regenerate after an intended change with ``NOTIFIER_UPDATE_GOLDEN=1 pytest THIS_FILE``
and paste the files into Slack's Block Kit Builder to look at them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.core.events import FAILED_EVENT, STATE_CHANGED
from notifier.core.live_messages import LiveControls
from notifier.core.status import FAILED, RUNNING
from notifier.notify.blocks_text import blocks_to_text, mrkdwn_to_text
from notifier.notify.render import SlackMessage, WatchInfo, render, render_thread_reply
from tests.conftest import make_event, make_status

GOLDEN = Path(__file__).parent.parent / "golden"
WATCH = WatchInfo(account_service_id=1234, image_version_id=567890, label="EU fleet, build 1.4.2")
ETA = datetime(2026, 11, 28, 17, 10, tzinfo=UTC)
RUNNING_60 = make_status(RUNNING, 60, eta=ETA)
FAILED_80 = make_status(
    FAILED,
    80,
    eta=ETA,
    failed_count=1,
    error="Image locked by diffid 42\n  at deploy step <upload> & verify",
)


def _as_posted(message: SlackMessage) -> dict[str, object]:
    return {"text": message.text, "blocks": message.blocks}


def _check(name: str, message: SlackMessage) -> None:
    path = GOLDEN / name
    actual = json.dumps(_as_posted(message), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("NOTIFIER_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; see module docstring"


def test_running_job_live_message_matches_golden_block_kit() -> None:
    _check("slack_live_running.json", render(WATCH, RUNNING_60, make_event(RUNNING_60)))


def test_failed_job_live_message_matches_golden_block_kit() -> None:
    event = make_event(FAILED_80, RUNNING_60, type=FAILED_EVENT)
    _check("slack_live_failed.json", render(WATCH, FAILED_80, event))


def test_failed_job_live_message_with_its_buttons_matches_golden_block_kit() -> None:
    event = make_event(FAILED_80, RUNNING_60, type=FAILED_EVENT)
    controls = LiveControls(7, 1234, 567890, open_url="https://notifier.example.com/watches/7")
    _check("slack_live_failed_buttons.json", render(WATCH, FAILED_80, event, controls))


def test_failed_job_thread_reply_matches_golden_block_kit() -> None:
    _check("slack_reply_failed.json", render_thread_reply(make_event(FAILED_80, RUNNING_60)))


def test_rendering_ignores_which_state_event_triggered_it() -> None:
    """Two pending updates of one message render the same, so the second one can be skipped."""
    older = make_event(make_status(RUNNING, 20), type=STATE_CHANGED)
    assert render(WATCH, RUNNING_60, older) == render(WATCH, RUNNING_60, make_event(RUNNING_60))


@pytest.mark.parametrize(
    "name",
    ["slack_live_running.json", "slack_live_failed.json", "slack_live_failed_buttons.json"],
)
def test_golden_messages_stay_inside_slacks_limits(name: str) -> None:
    posted = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    assert len(posted["blocks"]) <= 50
    assert len(posted["text"]) <= 4000
    for block in posted["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


def test_terminal_view_of_blocks_shows_what_slack_shows_without_markup() -> None:
    text = blocks_to_text(render(WATCH, FAILED_80, make_event(FAILED_80)).blocks)

    assert text.splitlines()[:3] == [
        "EU fleet, build 1.4.2",
        "─" * len("EU fleet, build 1.4.2"),
        "❌ Failed   ▓▓▓▓▓▓▓▓░░ 80%",
    ]
    assert "Took: 1 min" in text
    assert "ETA" not in text
    # The error's code block leaves no empty line behind in the terminal.
    assert "" not in text.splitlines()
    assert "at deploy step <upload> & verify" in text
    assert "Image version 567890 · Account service 1234" in text
    for markup in ("<!date", "&lt;", "&amp;", "```", ":x:"):
        assert markup not in text


def test_terminal_view_of_a_thread_reply_uses_the_same_emoji() -> None:
    reply = render_thread_reply(make_event(FAILED_80, RUNNING_60))
    assert mrkdwn_to_text(reply.text).startswith("❌ Running → Failed (80%) · error: Image locked")
