"""Block Kit read back as plain terminal text, so the demo shows exactly what Slack shows.

The demo prints what reached the (fake) Slack, not a second rendering of the event: a wording
change in ``render.py`` shows up in both places or in neither.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from notifier.notify.render import SLACK_TO_TERMINAL_EMOJI

# In <!date^UNIX^{date_short_pretty} {time}|2026-11-28 17:10 UTC> the terminal shows the fallback.
_DATE: Final = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_EMOJI: Final = re.compile(r":[a-z0-9_+-]+:")
_FENCE: Final = re.compile(r"```\n?")
_BOLD: Final = re.compile(r"\*([^*\n]+)\*")
_CODE: Final = re.compile(r"`([^`\n]+)`")
# A mention as a reader sees it, @ and the id: <@U123>, <!subteam^S123>, <!here>.
_MENTION: Final = re.compile(r"<@([A-Z0-9]+)>|<!subteam\^([A-Z0-9]+)>|<!(here)>")


def blocks_to_text(blocks: Sequence[dict[str, Any]]) -> str:
    """One block a paragraph: the header underlined, sections as lines, context joined by ' · '."""
    paragraphs: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _plain(str(block.get("text", {}).get("text", "")))
            paragraphs.append(f"{title}\n{'─' * min(len(title), 60)}")
        elif kind == "section":
            # A code block's closing fence would leave an empty line under its text.
            paragraphs.append(_plain(str(block.get("text", {}).get("text", ""))).rstrip("\n"))
        elif kind == "context":
            texts = [str(element.get("text", "")) for element in block.get("elements", [])]
            paragraphs.append(_plain(" · ".join(texts)))
        elif kind == "actions":
            # Buttons as the terminal can show them: [ Mute 1 h ]  [ Open ]
            labels = [
                f"[ {element.get('text', {}).get('text', '')} ]"
                for element in block.get("elements", [])
                if element.get("type") == "button"
            ]
            paragraphs.append("  ".join(labels))
    return "\n".join(paragraphs)


def mrkdwn_to_text(mrkdwn: str) -> str:
    """A single mrkdwn text (a thread reply's ``text``) as the terminal shows it."""
    return _plain(mrkdwn)


def _plain(mrkdwn: str) -> str:
    text = _DATE.sub(lambda m: m.group(1), mrkdwn)
    text = _MENTION.sub(lambda m: "@" + next(g for g in m.groups() if g), text)
    text = _EMOJI.sub(lambda m: SLACK_TO_TERMINAL_EMOJI.get(m.group(), m.group()), text)
    text = _FENCE.sub("", text)
    text = _CODE.sub(lambda m: m.group(1), _BOLD.sub(lambda m: m.group(1), text))
    # Last, so that an escaped "&lt;" from upstream reads as "<" and is not parsed again above.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
