"""How a daily digest reads in Slack (Block Kit) and in a terminal: pure, like notify/render.py.

Labels and job errors are upstream text: escaped once, so a label saying ``<!channel>`` pings
nobody; every section stays within Slack's limits however many jobs a day saw.
"""

from __future__ import annotations

from typing import Any, Final

from notifier.core.digest import DailyDigest, DigestItem, Outcome, duration_text
from notifier.notify.render import (
    FALLBACK_TEXT_LIMIT,
    HEADER_TEXT_LIMIT,
    SECTION_TEXT_LIMIT,
    SlackMessage,
    escape_slack,
    truncate,
)

# Lines per group: a section holds 3,000 characters, and a digest is read, not searched.
MAX_LINES_PER_GROUP: Final = 20
_ERROR_CHARS: Final = 120
_LABEL_CHARS: Final = 80

_HEADINGS: Final[dict[Outcome, str]] = {
    "failed": ":x: *Failed*",
    "squashed": ":no_entry_sign: *Squashed*",
    "stalled": ":warning: *Stalled*",
    "running": ":gear: *Still running*",
    "completed": ":white_check_mark: *Completed*",
}
_PLAIN: Final[dict[Outcome, str]] = {
    "failed": "failed",
    "squashed": "squashed",
    "stalled": "stalled",
    "running": "still running",
    "completed": "completed",
}


def render_digest(digest: DailyDigest, schedule: str = "") -> SlackMessage:
    """One message: a header, one section per kind of outcome that happened, a context line.

    ``schedule`` is the subscription's digest setting (``09:00 Europe/Berlin``), said in the
    context so readers know where the message comes from and when the next one is."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(f"Daily digest, {digest.day}", HEADER_TEXT_LIMIT),
                "emoji": True,
            },
        }
    ]
    counts: list[str] = []
    for outcome in _HEADINGS:
        items = digest.of(outcome)
        if not items:
            continue
        counts.append(f"{len(items)} {_PLAIN[outcome]}")
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _group(outcome, items)}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"The 24 hours to {digest.window_end.strftime('%Y-%m-%d %H:%M')} UTC"
                    + (f" · sent daily at {escape_slack(schedule)}" if schedule else ""),
                }
            ],
        }
    )
    text = truncate(f"Daily digest, {digest.day}: " + ", ".join(counts), FALLBACK_TEXT_LIMIT)
    return SlackMessage(text=text, blocks=blocks)


def _group(outcome: Outcome, items: tuple[DigestItem, ...]) -> str:
    """The heading and whole lines while they fit a section, then how many more there were:
    a line is never cut inside its markup."""
    text = _HEADINGS[outcome]
    room = SECTION_TEXT_LIMIT - len("\n… and 9999 more")
    shown = 0
    for item in items[:MAX_LINES_PER_GROUP]:
        line = _line(item)
        if len(text) + 1 + len(line) > room:
            break
        text += "\n" + line
        shown += 1
    if shown < len(items):
        text += f"\n… and {len(items) - shown} more"
    return text


def _line(item: DigestItem) -> str:
    title = escape_slack(
        truncate(item.label.strip() or f"Image version {item.image_version_id}", _LABEL_CHARS)
    )
    parts = [f"• *{title}* (`{item.image_version_id}`)"]
    if item.seconds is not None:
        parts.append(_when(item))
    if item.outcome in ("running", "stalled"):
        parts.append(f"{escape_slack(item.state)} {item.progress}%")
    line = " · ".join(parts)
    if item.error:
        error = escape_slack(truncate(" ".join(item.error.split()), _ERROR_CHARS))
        line += "\n      `" + error.replace("`", "'") + "`"
    return line


def _when(item: DigestItem) -> str:
    assert item.seconds is not None
    took = duration_text(item.seconds)
    if item.outcome == "stalled":
        return f"no progress for {took}"
    if item.outcome == "running":
        return f"running for {took}"
    return f"took {took}"


def render_digest_terminal(digest: DailyDigest) -> str:
    """What the demo prints for a digest: the same facts as plain lines."""
    lines = [f"📋 Daily digest, {digest.day}"]
    for outcome in _HEADINGS:
        for item in digest.of(outcome):
            when = f", {_when(item)}" if item.seconds is not None else ""
            title = item.label.strip() or f"Image version {item.image_version_id}"
            lines.append(f"   {_PLAIN[outcome]}: {title} ({item.image_version_id}){when}")
    return "\n".join(lines)
