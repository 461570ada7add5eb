"""The live message's buttons and mute line, as pure rendering: what each state offers, and that
only a Slack-verified user becomes a mention."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from notifier.core.live_messages import LiveControls
from notifier.core.silences import MuteShown
from notifier.core.status import RUNNING
from notifier.notify.blocks_text import blocks_to_text
from notifier.notify.render import SlackMessage, WatchInfo, render
from tests.conftest import make_status

WATCH = WatchInfo(account_service_id=1234, image_version_id=567890, label="EU fleet, build 1.4.2")
UNTIL = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
RUNNING_60 = make_status(RUNNING, 60, eta=datetime(2026, 11, 28, 17, 10, tzinfo=UTC))


def _controls(mute: MuteShown | None = None, open_url: str | None = None) -> LiveControls:
    return LiveControls(7, 1234, 567890, mute=mute, open_url=open_url)


def _mute(**overrides: object) -> MuteShown:
    fields: dict[str, object] = {
        "silence_id": 3,
        "ends_at": UNTIL,
        "created_by": "<@U0ANA>",
        "by_slack_user": True,
        "reason": "muted from Slack",
    }
    fields.update(overrides)
    return MuteShown(**fields)  # type: ignore[arg-type]


def _actions(message: SlackMessage) -> list[dict[str, object]]:
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    elements: list[dict[str, object]] = actions["elements"]
    return elements


def test_an_unmuted_message_offers_mute_stop_and_open_with_its_image_version() -> None:
    message = render(WATCH, RUNNING_60, None, _controls(open_url="https://n.example/watches/7"))
    assert [(e["action_id"], e.get("value")) for e in _actions(message)] == [
        ("mute_1h", "1234:567890"),
        ("stop_watching", "1234:567890"),
        ("open", None),
    ]
    assert _actions(message)[2]["url"] == "https://n.example/watches/7"
    assert "confirm" in _actions(message)[1]


def test_without_a_public_url_there_is_no_open_button() -> None:
    message = render(WATCH, RUNNING_60, None, _controls())
    assert [e["action_id"] for e in _actions(message)] == ["mute_1h", "stop_watching"]


def test_a_muted_message_says_who_muted_it_until_when_and_offers_unmute() -> None:
    message = render(WATCH, RUNNING_60, None, _controls(_mute()))
    text = blocks_to_text(message.blocks)
    assert "Muted by @U0ANA until 2026-11-28 18:00 UTC · muted from Slack" in text
    assert [e["action_id"] for e in _actions(message)] == ["unmute", "stop_watching"]
    assert message.text.endswith("muted until 2026-11-28 18:00 UTC")


def test_an_author_slack_did_not_verify_is_escaped_never_a_mention() -> None:
    message = render(
        WATCH,
        RUNNING_60,
        None,
        _controls(_mute(created_by="<!channel> <@U0EVE>", by_slack_user=False, reason="<!here>")),
    )
    line = json.dumps(message.blocks)
    assert "<!channel>" not in line
    assert "<!here>" not in line
    assert "&lt;!channel&gt; &lt;@U0EVE&gt;" in line


def test_an_operators_silence_names_how_to_end_it_and_offers_no_unmute() -> None:
    message = render(WATCH, RUNNING_60, None, _controls(_mute(liftable=False)))
    assert "`notifier silence expire 3`" in json.dumps(message.blocks)
    assert [e["action_id"] for e in _actions(message)] == ["stop_watching"]
