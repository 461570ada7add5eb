"""The transition detector: a pure diff of two observations of one job."""

from __future__ import annotations

from dataclasses import replace

from notifier.core.events import STATE_CHANGED, TERMINAL_EVENT_FOR_STATE, Detected
from notifier.core.status import JobStatus


def detect(previous: JobStatus | None, current: JobStatus) -> list[Detected]:
    """Events implied by going from ``previous`` (None: never seen) to ``current``.

    A state we cannot name (``state_id`` None) is never a change: it would otherwise announce a
    job moving to "nothing" and back. Skipped states are not invented: Queued straight to
    Complete is one change, because that is all we saw.
    """
    if current.state_id is None:
        return []
    if previous is not None and previous.state_id == current.state_id:
        return []
    events = [Detected(STATE_CHANGED, previous, current)]
    terminal = TERMINAL_EVENT_FOR_STATE.get(current.state_id)
    if terminal is not None:
        events.append(Detected(terminal, previous, current))
    return events


def carry_known_state(previous: JobStatus | None, current: JobStatus) -> JobStatus:
    """The status to remember: an unnamed state keeps the last known one instead of erasing it."""
    if current.state_id is not None or previous is None or previous.state_id is None:
        return current
    return replace(current, state_id=previous.state_id, state=previous.state)
