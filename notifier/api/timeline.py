"""Pure presentation for the status page: relative times, state colours, the timeline SVG.

No I/O here: each function maps values to text, so the tests feed it dataclasses and read the
result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from notifier.core.events import STATE_CHANGED, Event

# One colour per state, readable on white with white text on top.
STATE_COLOURS = {
    "Created": "#6b7280",
    "Pending": "#8b5cf6",
    "Queued": "#d97706",
    "Running": "#2563eb",
    "Complete": "#15803d",
    "Failed": "#dc2626",
    "Squashed": "#52525b",
    "Paused": "#92400e",
}
UNKNOWN_COLOUR = "#9ca3af"


def state_colour(state: str | None) -> str:
    return STATE_COLOURS.get(state or "", UNKNOWN_COLOUR)


def relative_time(when: datetime | None, now: datetime) -> str:
    """``in 4 min``, ``3 h ago``, ``now``: what a person reads at a glance."""
    if when is None:
        return "—"
    seconds = (when - now).total_seconds()
    amount = abs(seconds)
    if amount < 30:
        return "now"
    if amount < 90 * 60:
        text = f"{round(amount / 60)} min"
    elif amount < 36 * 3600:
        text = f"{round(amount / 3600)} h"
    else:
        text = f"{round(amount / 86400)} d"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@dataclass(frozen=True, slots=True)
class Band:
    state: str
    start: datetime
    end: datetime


def state_bands(events: Sequence[Event], now: datetime) -> list[Band]:
    """Each state the job was in, from the state change that entered it to the next (or now)."""
    changes = sorted((e for e in events if e.type == STATE_CHANGED), key=lambda e: e.occurred_at)
    bands: list[Band] = []
    for i, event in enumerate(changes):
        end = changes[i + 1].occurred_at if i + 1 < len(changes) else max(now, event.occurred_at)
        bands.append(Band(event.current.state, event.occurred_at, end))
    return bands


WIDTH, HEIGHT, BAR_Y, BAR_HEIGHT = 600, 70, 10, 30


def timeline_svg(events: Sequence[Event], now: datetime) -> str:
    """An inline SVG: time left to right, one coloured band per state, labelled when it fits."""
    bands = state_bands(events, now)
    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="state timeline" xmlns="http://www.w3.org/2000/svg">'
    ]
    if not bands:
        parts.append(
            f'<text x="{WIDTH // 2}" y="{BAR_Y + 20}" text-anchor="middle" fill="#6b7280">'
            "no state changes yet</text></svg>"
        )
        return "".join(parts)
    start, end = bands[0].start, bands[-1].end
    span = max((end - start).total_seconds(), 1.0)

    def x(when: datetime) -> float:
        return round((when - start).total_seconds() / span * WIDTH, 1)

    for band in bands:
        left, right = x(band.start), x(band.end)
        width = max(right - left, 2.0)
        state = escape(band.state)
        parts.append(
            f'<rect class="band" data-state="{state}" x="{left}" y="{BAR_Y}" width="{width}" '
            f'height="{BAR_HEIGHT}" fill="{state_colour(band.state)}">'
            f"<title>{state} from {band.start:%H:%M:%S} to {band.end:%H:%M:%S} UTC</title></rect>"
        )
        if width >= 8 * len(band.state):
            parts.append(
                f'<text x="{left + width / 2}" y="{BAR_Y + 20}" text-anchor="middle" '
                f'fill="#fff" font-size="12">{state}</text>'
            )
    axis_y = BAR_Y + BAR_HEIGHT + 18
    parts.append(
        f'<text x="0" y="{axis_y}" font-size="11" fill="#374151">{start:%H:%M:%S}</text>'
        f'<text x="{WIDTH}" y="{axis_y}" font-size="11" fill="#374151" text-anchor="end">'
        f"{end:%H:%M:%S} UTC</text></svg>"
    )
    return "".join(parts)
