"""How events read in Slack and the terminal, and that upstream text can never break out."""

from __future__ import annotations

import re
from typing import Any

from notifier.core.events import COMPLETED, STALLED, STATE_CHANGED, Event
from notifier.core.status import COMPLETE, FAILED, QUEUED, JobStatus
from notifier.notify.render import (
    FALLBACK_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    TRUNCATED_MARKER,
    SlackMessage,
    escape_slack,
    progress_bar,
    render_live_message,
    render_terminal,
    render_thread_reply,
    truncate,
)
from tests.conftest import make_event
from tests.support.samples import DETECTED, ETA, example_status

ETA_UNIX = int(ETA.timestamp())


def _status(**changes: Any) -> JobStatus:
    return example_status(**{"progress": 60, **changes})


def _event(
    current: JobStatus,
    previous: JobStatus | None = None,
    *,
    type: str = STATE_CHANGED,
    label: str = "EU fleet, build 1.4.2",
) -> Event:
    return make_event(
        current, previous, type=type, event_id="evt_1", label=label, occurred_at=DETECTED
    )


def _failed(error: str) -> JobStatus:
    return _status(state_id=FAILED, state="Failed", progress=80, error=error, failed_count=1)


def _texts(message: SlackMessage) -> list[str]:
    """Every text Slack would parse in the message, the fallback included."""
    found = [message.text]
    for block in message.blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found.extend(element["text"] for element in block.get("elements", []))
    return found


def _sections(message: SlackMessage) -> list[str]:
    return [block["text"]["text"] for block in message.blocks if block["type"] == "section"]


def test_running_job_live_message_shows_header_emoji_bar_and_local_time_eta() -> None:
    message = render_live_message(_event(_status()))

    header, status = message.blocks[0], message.blocks[1]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "EU fleet, build 1.4.2", "emoji": True},
    }
    assert status["text"]["text"] == (
        ":gear: *Running*   `▓▓▓▓▓▓░░░░ 60%`\n"
        f"*ETA:* <!date^{ETA_UNIX}^{{date_short_pretty}} {{time}}|2026-11-28 17:10 UTC>"
    )


def test_live_message_context_names_ids_and_times() -> None:
    message = render_live_message(_event(_status()))

    context = message.blocks[-1]
    assert context["type"] == "context"
    texts = [element["text"] for element in context["elements"]]
    assert texts[:2] == ["Image version `567890`", "Account service `1234`"]
    assert texts[2].startswith("Started <!date^")
    assert texts[2].endswith("|2026-11-28 16:05 UTC>")
    assert texts[3].endswith("|2026-11-28 17:00 UTC>")


def test_live_message_fallback_text_carries_state_progress_and_eta_in_utc() -> None:
    message = render_live_message(_event(_status()))

    assert message.text == "EU fleet, build 1.4.2: Running 60% · ETA 2026-11-28 17:10 UTC"


def test_failed_job_shows_error_in_code_block_and_in_fallback_text() -> None:
    message = render_live_message(_event(_failed("Image locked by diffid 42")))

    assert ":x: *Failed*" in _sections(message)[0]
    assert "*Failed attempts:* 1" in _sections(message)[0]
    assert _sections(message)[1] == "*Error*\n```\nImage locked by diffid 42\n```"
    assert "Failed 80%" in message.text
    # A finished job says how long it ran (started 16:05, last updated 17:00), not its ETA.
    assert "took 55 min" in message.text
    assert "ETA" not in message.text
    assert "*Took:* 55 min" in _sections(message)[0]
    assert "error: Image locked by diffid 42" in message.text


def test_hostile_error_is_escaped_kept_in_its_code_block_and_truncated() -> None:
    hostile = "<!channel> see <https://evil|click> & ```rm -rf``` `x` " + "A" * 5000
    message = render_live_message(_event(_failed(hostile), label="<!here> & <@U123>"))

    for text in _texts(message):
        assert "<!channel>" not in text
        assert "<!here>" not in text
        assert "<https://evil" not in text
        assert "<@U123>" not in text
        assert re.search(r"&(?!amp;|lt;|gt;)", text) is None, "a bare & Slack would misread"
    error = _sections(message)[1]
    assert "&lt;!channel&gt; see &lt;https://evil|click&gt; &amp;" in error
    assert error.startswith("*Error*\n```\n")
    assert error.count("```") == 2, "the error broke out of its code block"
    assert error.endswith("\n```" + TRUNCATED_MARKER)
    assert "`x`" in error, "single backticks are left alone inside a code block"
    assert all(len(section) <= SECTION_TEXT_LIMIT for section in _sections(message))
    assert len(message.text) <= FALLBACK_TEXT_LIMIT
    assert len(message.blocks) <= MAX_BLOCKS
    assert message.blocks[0]["text"]["text"] == "&lt;!here&gt; &amp; &lt;@U123&gt;"


def test_fallback_text_is_truncated_with_marker_when_error_is_huge() -> None:
    message = render_live_message(_event(_failed("E" * 10_000)))

    assert len(message.text) == FALLBACK_TEXT_LIMIT
    assert message.text.endswith(TRUNCATED_MARKER)
    assert "Failed 80%" in message.text


def test_long_label_is_cut_to_the_header_limit() -> None:
    message = render_live_message(_event(_status(), label="L" * 400))

    header = message.blocks[0]["text"]["text"]
    assert len(header) == HEADER_TEXT_LIMIT
    assert header.endswith(TRUNCATED_MARKER)


def test_missing_label_and_eta_render_sensibly() -> None:
    current = _status(state_id=QUEUED, state="Queued", progress=0, eta=None, started=None)
    message = render_live_message(_event(current, label="  "))

    assert message.blocks[0]["text"]["text"] == "Image version 567890"
    assert _sections(message)[0] == ":inbox_tray: *Queued*   `░░░░░░░░░░ 0%`\n*ETA:* no ETA"
    assert message.text == "Image version 567890: Queued 0% · ETA none"
    context = [element["text"] for element in message.blocks[-1]["elements"]]
    assert not any(text.startswith("Started") for text in context)


def test_unknown_state_shows_upstream_name_with_question_mark() -> None:
    message = render_live_message(_event(_status(state_id=None, state="Rebuilding")))

    assert _sections(message)[0].startswith(":grey_question: *Rebuilding*")


def test_stale_error_is_not_shown_once_a_retried_job_runs_again() -> None:
    message = render_live_message(_event(_status(error="old failure", failed_count=1)))

    assert "old failure" not in message.text
    assert all("old failure" not in section for section in _sections(message))


def test_thread_reply_names_the_transition_and_progress() -> None:
    reply = render_thread_reply(
        _event(_status(progress=40), _status(state_id=QUEUED, state="Queued"))
    )

    assert reply.text == ":gear: Queued → Running (40%)"
    assert reply.blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": reply.text}}]


def test_failed_thread_reply_includes_the_error() -> None:
    reply = render_thread_reply(_event(_failed("disk <full>"), _status()))

    assert reply.text == ":x: Running → Failed (80%) · error: disk &lt;full&gt;"
    assert reply.blocks[1]["text"]["text"] == "```\ndisk &lt;full&gt;\n```"


def test_thread_reply_for_other_events_says_what_happened() -> None:
    reply = render_thread_reply(_event(_status(), _status(), type=STALLED))

    assert reply.text == ":gear: Stalled: Running (60%)"


def test_terminal_rendering_has_the_facts_and_no_slack_markup() -> None:
    current = _failed("Image locked\nby diffid 42")
    text = render_terminal(_event(current, _status(), type=STATE_CHANGED))

    assert text.splitlines() == [
        "❌ EU fleet, build 1.4.2 [imageversion.state_changed]",
        "   Running → Failed (80%)",
        "   ▓▓▓▓▓▓▓▓░░ 80%   took 55 min",
        "   failed attempts: 1",
        "   error: Image locked",
        "          by diffid 42",
        "   image version 567890 · account service 1234 · started 2026-11-28 16:05 UTC"
        " · updated 2026-11-28 17:00 UTC",
    ]
    assert "<!date" not in text
    assert "*" not in text


def test_terminal_rendering_of_a_completed_job_says_how_long_it_took() -> None:
    current = _status(state_id=COMPLETE, state="Completed", progress=100, eta=None)
    text = render_terminal(_event(current, _status(), type=COMPLETED, label=""))

    assert text.splitlines()[:3] == [
        "✅ Image version 567890 [imageversion.completed]",
        "   Running → Complete (100%)",
        "   ▓▓▓▓▓▓▓▓▓▓ 100%   took 55 min",
    ]


def test_a_finished_job_without_start_says_finished_and_no_eta() -> None:
    current = _status(state_id=COMPLETE, state="Completed", progress=100, started=None)
    message = render_live_message(_event(current, _status(), type=COMPLETED))

    assert "*Finished*" in _sections(message)[0]
    assert "ETA" not in _sections(message)[0]
    assert message.text.endswith("Complete 100% · finished")


def test_progress_bar_rounds_down_and_clamps() -> None:
    assert progress_bar(99) == "▓▓▓▓▓▓▓▓▓░ 99%"
    assert progress_bar(-5) == "░░░░░░░░░░ 0%"
    assert progress_bar(250) == "▓▓▓▓▓▓▓▓▓▓ 100%"


def test_escape_slack_escapes_only_the_three_control_characters() -> None:
    assert escape_slack("a & b <c> \"d\" 'e'") == "a &amp; b &lt;c&gt; \"d\" 'e'"


def test_truncate_never_cuts_an_escape_in_half() -> None:
    text = escape_slack("x" * 10 + "&" * 10)
    cut = truncate(text, 10 + len(TRUNCATED_MARKER) + 3)

    assert cut == "x" * 10 + TRUNCATED_MARKER
    assert truncate("short", 10) == "short"
