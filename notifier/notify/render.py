"""How an event reads in Slack and in a terminal: pure functions, so every wording is unit-testable.

Everything that comes from upstream (labels, state names, job errors) is untrusted text: it goes
through :func:`escape_slack` once, so a job error saying ``<!channel>`` can neither ping a channel
nor fake a link, and through the length limits Slack enforces, so a 5,000-character stack trace
cannot get the whole message rejected with ``invalid_blocks``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple

from notifier.core import events as model
from notifier.core.clock import as_utc
from notifier.core.digest import duration_text
from notifier.core.events import Event
from notifier.core.live_messages import LiveControls
from notifier.core.silences import MuteShown
from notifier.core.status import (
    COMPLETE,
    CREATED,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    SQUASHED,
    JobStatus,
    state_name,
)

# Slack's documented limits; going over any of them gets the whole message rejected.
SECTION_TEXT_LIMIT: Final = 3000
HEADER_TEXT_LIMIT: Final = 150
MAX_BLOCKS: Final = 50
FALLBACK_TEXT_LIMIT: Final = 4000
TRUNCATED_MARKER: Final = "… (truncated)"


class _Emoji(NamedTuple):
    """One picture, as Slack names it and as a terminal shows it (the demo)."""

    slack: str
    terminal: str


_STATE_EMOJI: Final[dict[int | None, _Emoji]] = {
    CREATED: _Emoji(":new:", "🆕"),
    PENDING: _Emoji(":hourglass_flowing_sand:", "⏳"),
    QUEUED: _Emoji(":inbox_tray:", "📥"),
    RUNNING: _Emoji(":gear:", "⚙️"),
    COMPLETE: _Emoji(":white_check_mark:", "✅"),
    FAILED: _Emoji(":x:", "❌"),
    SQUASHED: _Emoji(":no_entry_sign:", "🚫"),
}
_UNKNOWN_STATE_EMOJI: Final = _Emoji(":grey_question:", "❔")


def _state_emoji(status: JobStatus) -> _Emoji:
    return _STATE_EMOJI.get(status.state_id, _UNKNOWN_STATE_EMOJI)


# So that a terminal shows the same picture as Slack (see notify/blocks_text.py).
SLACK_TO_TERMINAL_EMOJI: Final[dict[str, str]] = {
    emoji.slack: emoji.terminal
    for emoji in (*_STATE_EMOJI.values(), _UNKNOWN_STATE_EMOJI, _Emoji(":warning:", "⚠️"))
}

# What a reply says for events that are not a change of state; the state itself follows.
_EVENT_PHRASES: Final[dict[str, str]] = {
    model.STALLED: "Stalled",
    model.RESUMED: "Moving again",
    model.ETA_CHANGED: "ETA changed",
    model.OVERDUE: "Overdue",
    model.PROGRESS: "Progress",
    model.POLL_FAILING: "Polling is failing",
    model.POLL_RECOVERED: "Polling recovered",
}

# The note a non-state event adds to the live message, which is all a channel sees of it: the
# sink replies in the thread for state changes only.
_NOTE_EMOJI: Final[dict[str, str]] = {
    model.STALLED: ":warning:",
    model.RESUMED: ":arrow_forward:",
    model.ETA_CHANGED: ":clock3:",
    model.OVERDUE: ":alarm_clock:",
    model.PROGRESS: ":chart_with_upwards_trend:",
    model.POLL_FAILING: ":electric_plug:",
    model.POLL_RECOVERED: ":white_check_mark:",
}

_BAR_CELLS: Final = 10
_FENCE_RUN: Final = re.compile(r"`{3,}")
# A look-alike for the backtick that Slack does not treat as a code fence.
_BACKTICK_LOOKALIKE: Final = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT


# The action ids of the live message's buttons, as POST /slack/interactions reads them back.
ACTION_MUTE: Final = "mute_1h"
ACTION_UNMUTE: Final = "unmute"
ACTION_STOP: Final = "stop_watching"
ACTION_OPEN: Final = "open"


@dataclass(frozen=True)
class SlackMessage:
    """``text`` is what notifications, screen readers and old clients show; ``blocks`` the rest."""

    text: str
    blocks: list[dict[str, Any]]


def escape_slack(text: str) -> str:
    """Escape the three characters Slack parses as control sequences, and nothing else.

    Slack decodes exactly ``&amp;``, ``&lt;`` and ``&gt;``; escaping more (quotes, say) would show
    up literally in the channel.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with a visible marker, never inside an ``&...;`` escape.

    Cutting ``&amp;`` in half would leave a bare ``&am`` that Slack shows as garbage.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(TRUNCATED_MARKER), 0)]
    amp = cut.rfind("&", max(len(cut) - 4, 0))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + TRUNCATED_MARKER


@dataclass(frozen=True, slots=True)
class WatchInfo:
    """What the live message says about the watch itself, whatever its status."""

    account_service_id: int
    image_version_id: int
    label: str

    @classmethod
    def of(cls, event: Event) -> WatchInfo:
        return cls(event.account_service_id, event.image_version_id, event.label)


def render_live_message(event: Event) -> SlackMessage:
    """The live message as of ``event`` alone (the sink renders the newest status instead)."""
    return render(WatchInfo.of(event), event.current, event)


def render(
    watch: WatchInfo,
    status: JobStatus,
    event: Event | None = None,
    controls: LiveControls | None = None,
) -> SlackMessage:
    """The one message per image version that is edited in place as the job moves.

    ``status`` is the newest known status, which may be newer than ``event``'s: that is how
    several pending updates of one message become a single ``chat.update``. ``event`` only adds
    a note for news the status cannot show (stalled, overdue, polling failing), so two
    renderings of one status after state changes are identical and the second can be skipped.
    """
    current = status
    state = _state(current)
    emoji = _state_emoji(current).slack
    title = _watch_title(watch)

    status_lines = [
        f"{emoji} *{escape_slack(state)}*   `{progress_bar(current.progress)}`",
        _when_line(current),
    ]
    if current.failed_count:
        status_lines.append(f"*Failed attempts:* {current.failed_count}")

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(escape_slack(title), HEADER_TEXT_LIMIT),
                "emoji": True,
            },
        },
        _section("\n".join(status_lines)),
    ]
    note = _note(event) if event is not None else ""
    if note:
        blocks.append(_section(note))
    if _shows_error(current):
        assert current.error is not None
        blocks.append(_section(_error_block("*Error*\n", current.error)))

    context = [
        f"Image version `{watch.image_version_id}`",
        f"Account service `{watch.account_service_id}`",
        *(f"{label.capitalize()} {_slack_time(at)}" for label, at in _job_times(current)),
    ]
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": text} for text in context],
        }
    )
    if controls is not None:
        if controls.mute is not None:
            blocks.append(_context(mute_line(controls.mute)))
        if controls.buttons:
            blocks.append(_buttons(controls))

    fallback = [
        f"{escape_slack(title)}: {escape_slack(state)} {current.progress}%",
        _when_fallback(current),
    ]
    if _shows_error(current):
        assert current.error is not None
        fallback.append(f"error: {_one_line(current.error)}")
    if event is not None and event.type in _EVENT_PHRASES:
        said = detail_text(event)
        fallback.append(
            escape_slack(
                f"{_EVENT_PHRASES[event.type]}: {said}" if said else _EVENT_PHRASES[event.type]
            )
        )
    if controls is not None and controls.mute is not None:
        fallback.append(f"muted until {_utc_text(controls.mute.ends_at)}")
    text = truncate(" · ".join(fallback), FALLBACK_TEXT_LIMIT)
    return SlackMessage(text=text, blocks=blocks[:MAX_BLOCKS])


def mute_line(mute: MuteShown) -> str:
    """ "Muted by @ana until 18:00 · reason": a Slack user Slack verified is shown as a mention,
    any other author (the CLI's OS user, an API caller) as escaped text."""
    who = mute.created_by if mute.by_slack_user else escape_slack(mute.created_by or "someone")
    line = f":no_bell: *Muted* by {who} until {_slack_time(mute.ends_at)}"
    if mute.reason:
        line += f" · {escape_slack(_one_line_raw(mute.reason))}"
    if not mute.liftable:
        line += f" (silence {mute.silence_id}: `notifier silence expire {mute.silence_id}`)"
    return truncate(line, SECTION_TEXT_LIMIT)


def _buttons(controls: LiveControls) -> dict[str, Any]:
    """Mute 1 h or Unmute, Stop watching, and Open when the status page has a public URL."""
    key = f"{controls.account_service_id}:{controls.image_version_id}"
    elements: list[dict[str, Any]] = []
    if controls.mute is None:
        elements.append(_button("Mute 1 h", ACTION_MUTE, key))
    elif controls.mute.liftable:
        elements.append(_button("Unmute", ACTION_UNMUTE, key))
    stop = _button("Stop watching", ACTION_STOP, key)
    stop["confirm"] = {
        "title": {"type": "plain_text", "text": "Stop watching?"},
        "text": {
            "type": "plain_text",
            "text": f"This channel stops following image version {controls.image_version_id}.",
        },
        "confirm": {"type": "plain_text", "text": "Stop watching"},
        "deny": {"type": "plain_text", "text": "Keep it"},
    }
    elements.append(stop)
    if controls.open_url is not None:
        elements.append(
            {
                "type": "button",
                "action_id": ACTION_OPEN,
                "text": {"type": "plain_text", "text": "Open"},
                "url": controls.open_url,
            }
        )
    return {"type": "actions", "block_id": "live_controls", "elements": elements}


def _button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def render_held_failure_reply(event: Event) -> SlackMessage:
    """The one reply after a silence when the job failed while it lasted."""
    current = event.current
    line = (
        f"{_state_emoji(current).slack} "
        f"Failed while muted, at {_slack_time(event.occurred_at)}: "
        f"{escape_slack(_summary(event))}"
    )
    blocks: list[dict[str, Any]] = [_section(line)]
    text = f"Failed while muted: {escape_slack(_summary(event))}"
    if _shows_error(current):
        assert current.error is not None
        blocks.append(_section(_error_block("", current.error)))
        text = f"{text} · error: {_one_line(current.error)}"
    return SlackMessage(text=truncate(text, FALLBACK_TEXT_LIMIT), blocks=blocks)


def with_mentions(message: SlackMessage, mentions: Sequence[str]) -> SlackMessage:
    """``message`` led by a line of mentions (checked when configured, never upstream text), for
    a sink that cannot reply in a thread; ``message`` itself without any."""
    if not mentions:
        return message
    line = " ".join(mentions)
    return SlackMessage(
        text=truncate(f"{line} {message.text}", FALLBACK_TEXT_LIMIT),
        blocks=[_section(line), *message.blocks][:MAX_BLOCKS],
    )


def took(status: JobStatus) -> str | None:
    """How long a finished job ran ("4 min 12 s"); None when it is not finished or upstream
    gave no start and end. A finished job's ETA, often still in the future, read as unfinished."""
    if not status.is_terminal or status.started is None or status.updated is None:
        return None
    seconds = max(0, round((as_utc(status.updated) - as_utc(status.started)).total_seconds()))
    return duration_text(seconds)


def _when_line(status: JobStatus) -> str:
    if status.is_terminal:
        duration = took(status)
        return f"*Took:* {duration}" if duration else "*Finished*"
    eta = _slack_time(status.eta) if status.eta else "no ETA"
    return f"*ETA:* {eta}{_estimated(status)}"


def _when_fallback(status: JobStatus) -> str:
    if status.is_terminal:
        duration = took(status)
        return f"took {duration}" if duration else "finished"
    return f"ETA {_utc_text(status.eta) if status.eta else 'none'}{_estimated(status)}"


def render_thread_reply(event: Event, mentions: Sequence[str] = ()) -> SlackMessage:
    """A short line under the live message, so the thread keeps the history the edits overwrite.

    ``mentions`` (checked when configured, see :mod:`notifier.core.mentions`) lead the line
    unescaped: the only Slack markup here that may page anyone.
    """
    current = event.current
    emoji = _state_emoji(current).slack
    line = f"{emoji} {escape_slack(_summary(event))}"
    if mentions:
        line = f"{' '.join(mentions)} {line}"
    blocks: list[dict[str, Any]] = [_section(line)]
    text = line
    if _shows_error(current):
        assert current.error is not None
        blocks.append(_section(_error_block("", current.error)))
        text = f"{line} · error: {_one_line(current.error)}"
    return SlackMessage(text=truncate(text, FALLBACK_TEXT_LIMIT), blocks=blocks)


def render_terminal(event: Event) -> str:
    """What the demo prints: the live message's facts as plain lines, no Slack markup."""
    current = event.current
    emoji = _state_emoji(current).terminal
    lines = [
        f"{emoji} {_title(event)} [{event.type}]",
        f"   {_summary(event)}",
        f"   {progress_bar(current.progress)}   {_when_fallback(current)}",
    ]
    if current.failed_count:
        lines.append(f"   failed attempts: {current.failed_count}")
    if _shows_error(current):
        assert current.error is not None
        error_lines = current.error.strip().splitlines() or [""]
        lines.append(f"   error: {error_lines[0]}")
        lines.extend(f"          {extra}" for extra in error_lines[1:20])
        if len(error_lines) > 20:
            lines.append(f"          {TRUNCATED_MARKER}")
    times = [
        f"image version {event.image_version_id}",
        f"account service {event.account_service_id}",
        *(f"{label} {_utc_text(at)}" for label, at in _job_times(current)),
    ]
    lines.append("   " + " · ".join(times))
    return "\n".join(lines)


def _job_times(current: JobStatus) -> list[tuple[str, datetime]]:
    """The job's own times a message ends with, those upstream gave, by name."""
    times = (("started", current.started), ("updated", current.updated))
    return [(label, at) for label, at in times if at is not None]


def progress_bar(progress: int) -> str:
    """``▓▓▓▓▓▓░░░░ 60%``; rounds down, so a bar is only full when the job says 100."""
    clamped = min(max(progress, 0), 100)
    filled = clamped * _BAR_CELLS // 100
    return "▓" * filled + "░" * (_BAR_CELLS - filled) + f" {clamped}%"


def _title(event: Event) -> str:
    return _watch_title(WatchInfo.of(event))


def _watch_title(watch: WatchInfo) -> str:
    return watch.label.strip() or f"Image version {watch.image_version_id}"


def _state(status: JobStatus) -> str:
    """Our name for a known state (upstream says "Completed" sometimes), upstream's otherwise."""
    return state_name(status.state_id, fallback=status.state.strip() or "Unknown")


def _note(event: Event) -> str:
    """The live message's line for a non-state event (stalled, polling failing...); else empty."""
    if event.type not in _EVENT_PHRASES:
        return ""
    said = detail_text(event)
    phrase = f"*{_EVENT_PHRASES[event.type]}*"
    return f"{_NOTE_EMOJI[event.type]} {phrase}" + (f": {escape_slack(said)}" if said else "")


def _estimated(status: JobStatus) -> str:
    """Marks an ETA we computed from the progress rate, so nobody takes it for upstream's."""
    return " (estimated)" if status.eta and status.eta_estimated else ""


def _summary(event: Event) -> str:
    current = event.current
    state = _state(current)
    if event.type in _EVENT_PHRASES:
        summary = f"{_EVENT_PHRASES[event.type]}: {state} ({current.progress}%)"
        said = detail_text(event)
        return f"{summary} · {said}" if said else summary
    if event.previous is None:
        return f"{state} ({current.progress}%)"
    return f"{_state(event.previous)} → {state} ({current.progress}%)"


def detail_text(event: Event) -> str:
    """What a non-state event's detail says, in words; empty when it says nothing we know.

    Only our own values go in here, plus upstream's one-line error message for poll failures,
    which the callers escape like every other upstream text.
    """
    detail = event.detail
    if event.type == model.POLL_FAILING:
        reason = str(detail.get("reason", "")).replace("_", " ")
        parts = [reason] if reason else []
        if detail.get("credential"):
            parts.append(f"credential {detail['credential']}")
        if detail.get("consecutive_failures"):
            parts.append(f"{detail['consecutive_failures']} failed polls in a row")
        if detail.get("paused"):
            parts.append("polling paused until `notifier watch resume`")
        text = ", ".join(parts)
        message = detail.get("message")
        return f"{text}: {_one_line_raw(str(message))}" if message else text
    if event.type == model.POLL_RECOVERED and detail.get("consecutive_failures"):
        return f"after {detail['consecutive_failures']} failed polls"
    if event.type == model.STALLED and "stalled_seconds" in detail:
        minutes = int(detail["stalled_seconds"]) // 60
        what = "waiting" if detail.get("why") == "waiting" else "no progress"
        return f"{what} for {minutes} min"
    if event.type == model.ETA_CHANGED and "eta" in detail:
        estimated = " (estimated)" if detail.get("estimated") else ""
        return (
            f"ETA {_rfc_text(detail.get('previous_eta'))} → {_rfc_text(detail['eta'])}{estimated}"
        )
    if event.type == model.OVERDUE and "eta" in detail:
        return f"ETA {_rfc_text(detail['eta'])} has passed"
    if event.type == model.PROGRESS and "milestone" in detail:
        return f"reached {detail['milestone']}%"
    return ""


def _rfc_text(value: object) -> str:
    """``2026-11-28T17:04:05Z`` from a detail, shown like every other time here."""
    if not isinstance(value, str):
        return "?"
    try:
        return _utc_text(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return value


def _one_line_raw(text: str) -> str:
    return truncate(" ".join(text.split()), 500)


def _shows_error(status: JobStatus) -> bool:
    """Only a failed or squashed job shows its error: upstream keeps a stale one after a retry."""
    return bool(status.error and status.error.strip()) and status.state_id in (FAILED, SQUASHED)


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_LIMIT)},
    }


def _error_block(prefix: str, error: str) -> str:
    """The error in a code block that fits one section, with the marker outside the fence."""
    body = _FENCE_RUN.sub(lambda m: _BACKTICK_LOOKALIKE * len(m.group()), escape_slack(error))
    body = body.strip("\n") or " "
    opening, closing = prefix + "```\n", "\n```"
    room = SECTION_TEXT_LIMIT - len(opening) - len(closing)
    if len(body) <= room:
        return opening + body + closing
    cut = truncate(body, room)[: -len(TRUNCATED_MARKER)]
    return opening + cut + closing + TRUNCATED_MARKER


def _one_line(text: str) -> str:
    return escape_slack(" ".join(text.split()))


def _utc_text(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _slack_time(moment: datetime) -> str:
    """Shown in each reader's own time zone; clients that cannot do that show the UTC fallback."""
    unix = int(as_utc(moment).timestamp())
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{_utc_text(moment)}>"
