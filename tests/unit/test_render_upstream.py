"""How the events of issue 8 read in Slack, in a terminal and in the webhook payload."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from notifier.core.events import (
    ETA_CHANGED,
    OVERDUE,
    POLL_FAILING,
    POLL_RECOVERED,
    PROGRESS,
    STALLED,
)
from notifier.notify.payload import webhook_payload
from notifier.notify.render import render_live_message, render_terminal, render_thread_reply
from tests.conftest import T0, make_event, make_status


def test_poll_failing_says_why_which_credential_and_how_to_resume() -> None:
    event = replace(
        make_event(make_status(4, 40), type=POLL_FAILING),
        detail={
            "reason": "credentials_rejected",
            "message": "Clanforge answered 401: <b>Invalid</b> credentials",
            "consecutive_failures": 1,
            "paused": True,
            "credential": "us-fleet",
        },
    )
    reply = render_thread_reply(event)
    assert reply.text == (
        ":gear: Polling is failing: Running (40%) · credentials rejected, credential us-fleet, "
        "1 failed polls in a row, polling paused until `notifier watch resume`: "
        "Clanforge answered 401: &lt;b&gt;Invalid&lt;/b&gt; credentials"
    )
    payload = webhook_payload(event)
    assert payload["type"] == "watch.poll_failing"
    assert payload["data"]["detail"]["credential"] == "us-fleet"
    assert payload["data"]["detail"]["paused"] is True


def test_poll_recovered_and_timing_events_read_as_sentences() -> None:
    def said(type: str, detail: dict[str, object]) -> str:
        return render_terminal(replace(make_event(make_status(4, 40), type=type), detail=detail))

    assert "Polling recovered: Running (40%) · after 4 failed polls" in said(
        POLL_RECOVERED, {"consecutive_failures": 4}
    )
    assert "Stalled: Running (40%) · no progress for 15 min" in said(
        STALLED, {"why": "no_progress", "stalled_seconds": 900, "threshold_seconds": 900}
    )
    assert "ETA changed: Running (40%) · ETA 2026-11-28 17:30 UTC → 2026-11-28 17:40 UTC" in said(
        ETA_CHANGED,
        {"previous_eta": "2026-11-28T17:30:00Z", "eta": "2026-11-28T17:40:00Z", "estimated": False},
    )
    assert "Overdue: Running (40%) · ETA 2026-11-28 17:10 UTC has passed" in said(
        OVERDUE, {"eta": "2026-11-28T17:10:00Z", "overdue_seconds": 400}
    )
    assert "Progress: Running (40%) · reached 25%" in said(PROGRESS, {"milestone": 25})


def test_an_estimated_eta_is_marked_in_slack_in_the_terminal_and_in_the_payload() -> None:
    status = replace(make_status(4, 40), eta=T0 + timedelta(minutes=30), eta_estimated=True)
    event = make_event(status)
    live = render_live_message(event)
    assert "(estimated)" in live.blocks[1]["text"]["text"]
    assert live.text.endswith("ETA 2026-11-28 17:30 UTC (estimated)")
    assert "ETA 2026-11-28 17:30 UTC (estimated)" in render_terminal(event)
    assert webhook_payload(event)["data"]["current"]["eta_estimated"] is True


def test_an_upstream_eta_carries_no_estimate_mark() -> None:
    event = make_event(make_status(4, 40, eta=T0 + timedelta(minutes=30)))
    assert "estimated" not in render_live_message(event).text
    assert "eta_estimated" not in webhook_payload(event)["data"]["current"]


def test_the_live_message_carries_a_note_for_events_that_are_not_state_changes() -> None:
    event = replace(
        make_event(make_status(4, 40), type=POLL_FAILING),
        detail={"reason": "unavailable", "message": "Clanforge answered 503", "paused": False},
    )
    live = render_live_message(event)
    assert live.blocks[2]["text"]["text"] == (
        ":electric_plug: *Polling is failing*: unavailable: Clanforge answered 503"
    )
    assert live.text.endswith("Polling is failing: unavailable: Clanforge answered 503")
    state = render_live_message(make_event(make_status(4, 40)))
    assert [b["type"] for b in state.blocks] == ["header", "section", "context"]


def test_a_stall_note_says_how_long_the_job_has_not_moved() -> None:
    event = replace(
        make_event(make_status(4, 40), type=STALLED),
        detail={"why": "no_progress", "stalled_seconds": 1200, "threshold_seconds": 900},
    )
    assert render_live_message(event).blocks[2]["text"]["text"] == (
        ":warning: *Stalled*: no progress for 20 min"
    )
