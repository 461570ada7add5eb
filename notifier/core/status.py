"""Our model of a Clanforge image version job, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

CREATED: Final = 1
PENDING: Final = 2
QUEUED: Final = 3
RUNNING: Final = 4
COMPLETE: Final = 5
FAILED: Final = 6
SQUASHED: Final = 7

STATE_NAMES: Final[dict[int, str]] = {
    CREATED: "Created",
    PENDING: "Pending",
    QUEUED: "Queued",
    RUNNING: "Running",
    COMPLETE: "Complete",
    FAILED: "Failed",
    SQUASHED: "Squashed",
}

# Upstream spells some names differently from the state table (the seed page says "Completed").
_NAME_ALIASES: Final[dict[str, int]] = {
    **{name.lower(): state_id for state_id, name in STATE_NAMES.items()},
    "completed": COMPLETE,
}

TERMINAL_STATES: Final = frozenset({COMPLETE, FAILED, SQUASHED})


def state_id_for_name(name: str) -> int | None:
    """The documented state id a state name stands for, or None when upstream invented a new one."""
    return _NAME_ALIASES.get(name.strip().lower())


def check_state_names(names: list[str]) -> list[str]:
    """``names`` when each names a state (as :func:`state_id_for_name` reads it); ValueError
    names the first that does not (the configuration and the API refuse it alike)."""
    for name in names:
        if state_id_for_name(name) is None:
            raise ValueError(f"unknown state {name!r}; known: {', '.join(STATE_NAMES.values())}")
    return names


def state_name(state_id: int | None, fallback: str = "Unknown") -> str:
    if state_id is None:
        return fallback
    return STATE_NAMES.get(state_id, fallback)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One observation of an image version job.

    ``state_id`` is None only when upstream gave neither a state id nor a name we know: such a
    status carries progress and times but never counts as a change of state.
    """

    image_version_id: int
    state_id: int | None
    state: str
    progress: int
    eta: datetime | None
    error: str | None
    failed_count: int
    created: datetime | None
    started: datetime | None
    updated: datetime | None
    eta_estimated: bool = False
    """True when upstream gave no ETA and ``eta`` is our estimate from the progress rate."""

    @property
    def is_terminal(self) -> bool:
        return self.state_id in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class FetchedStatus:
    """One status reply: the digest of its body, and the status it describes.

    ``status`` is None when the body's digest equals the one the caller already knew: the reply
    was not parsed, because it says exactly what the caller stored from it last time.
    """

    digest: bytes
    status: JobStatus | None
