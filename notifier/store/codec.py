"""How our dataclasses are kept in JSON columns and rows: the store's one translation layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, Final, TypeVar

from notifier.core.clock import as_utc
from notifier.core.digest import DailyDigest, DigestItem
from notifier.core.events import Event
from notifier.core.status import JobStatus
from notifier.core.timing import Tracking

T = TypeVar("T")


def from_attributes(cls: type[T], source: Any, /, **computed: Any) -> T:
    """A ``cls`` (a dataclass or a named tuple) from the same-named columns of ``source`` (a row,
    or a dataclass like one): the store's one row-to-dataclass reader, so a new field and its
    column need no mapper kept in step. ``computed`` gives the fields no column holds as they
    are; a field ``source`` lacks keeps its default."""
    # A row's columns, not its tuple methods (``count``, ``index``) that attributes would find.
    # Read once: a row builds a new mapping each time it is asked for one.
    columns = getattr(source, "_mapping", None)
    if columns is None:
        columns = _fields_of(source)
    taken = {
        name: columns[name]
        for name in _field_names(cls)
        if name not in computed and name in columns
    }
    return cls(**taken, **computed)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's or named tuple's field names, looked up once per class."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = cls._fields if hasattr(cls, "_fields") else tuple(f.name for f in fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def _fields_of(instance: object) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in _field_names(type(instance))}


def _time(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def status_to_json(status: JobStatus) -> dict[str, Any]:
    return {
        "image_version_id": status.image_version_id,
        "state_id": status.state_id,
        "state": status.state,
        "progress": status.progress,
        "eta": _time(status.eta),
        "error": status.error,
        "failed_count": status.failed_count,
        "created": _time(status.created),
        "started": _time(status.started),
        "updated": _time(status.updated),
        "eta_estimated": status.eta_estimated,
    }


def status_from_json(data: dict[str, Any]) -> JobStatus:
    return JobStatus(
        image_version_id=int(data["image_version_id"]),
        state_id=None if data.get("state_id") is None else int(data["state_id"]),
        state=str(data["state"]),
        progress=int(data["progress"]),
        eta=_parse_time(data.get("eta")),
        error=data.get("error"),
        failed_count=int(data.get("failed_count", 0)),
        created=_parse_time(data.get("created")),
        started=_parse_time(data.get("started")),
        updated=_parse_time(data.get("updated")),
        eta_estimated=bool(data.get("eta_estimated", False)),
    )


MEMORY_COLUMNS: Final = (
    "state_id",
    "state_name",
    "progress",
    "eta",
    "error",
    "failed_count",
    "job_created",
    "job_started",
    "job_updated",
    "eta_estimated",
    "moved_at",
    "stalled",
    "eta_baseline",
    "overdue",
    "milestone",
    "rate_since",
    "rate_base_progress",
)
"""The ``job_status`` columns :func:`memory_from_values` reads, in its order."""
_STATUS_COLUMNS: Final = MEMORY_COLUMNS.index("eta_estimated") + 1
"""The first of :data:`MEMORY_COLUMNS` hold the status, the rest the timing memory."""


def status_from_row(image_version_id: int, row: Any) -> JobStatus:
    """The stored status from a row with the ``job_status`` columns, read by name in the one
    column order :func:`memory_from_values` reads by position."""
    columns = row._mapping
    return JobStatus(image_version_id, *(columns[c] for c in MEMORY_COLUMNS[:_STATUS_COLUMNS]))


def memory_from_values(image_version_id: int, values: Sequence[Any]) -> tuple[JobStatus, Tracking]:
    """The stored status and timing memory from :data:`MEMORY_COLUMNS`' values, by position:
    the status's columns stand in :class:`JobStatus`'s order (its booleans are typed columns,
    read as bool), the memory's in :class:`Tracking`'s."""
    status = JobStatus(image_version_id, *values[:_STATUS_COLUMNS])
    moved_at, stalled, eta_baseline, overdue, milestone, rate_since, rate_base = values[
        _STATUS_COLUMNS:
    ]
    tracking = Tracking(
        moved_at,
        bool(stalled),
        eta_baseline,
        bool(overdue),
        milestone or 0,
        rate_since,
        rate_base or 0,
    )
    return status, tracking


def memory_to_values(status: JobStatus, tracking: Tracking) -> tuple[Any, ...]:
    """The values of :data:`MEMORY_COLUMNS` for a status and its timing memory, by position."""
    return (
        status.state_id,
        status.state,
        status.progress,
        status.eta,
        status.error,
        status.failed_count,
        status.created,
        status.started,
        status.updated,
        status.eta_estimated,
        tracking.moved_at,
        tracking.stalled,
        tracking.eta_baseline,
        tracking.overdue,
        tracking.milestone,
        tracking.rate_since,
        tracking.rate_base_progress,
    )


def event_from_row(row: Any) -> Event:
    """An :class:`Event` from a row with the ``events`` table's columns (and, when claimed for
    sending, the watch's ``owners``)."""
    return from_attributes(
        Event,
        row,
        previous=None if row.previous is None else status_from_json(row.previous),
        current=status_from_json(row.current),
        detail=row.detail or {},
        owners=tuple(getattr(row, "owners", None) or ()),
    )


def digest_to_json(digest: DailyDigest) -> dict[str, Any]:
    """A digest as the outbox keeps it: rendered from the events once, when it is enqueued."""
    return {
        "id": digest.id,
        "subscription_id": digest.subscription_id,
        "day": digest.day,
        "window_start": _time(digest.window_start),
        "window_end": _time(digest.window_end),
        "items": [asdict(item) for item in digest.items],
    }


def digest_from_json(data: dict[str, Any]) -> DailyDigest:
    start, end = _parse_time(data["window_start"]), _parse_time(data["window_end"])
    assert start is not None
    assert end is not None
    return DailyDigest(
        id=str(data["id"]),
        subscription_id=int(data["subscription_id"]),
        day=str(data["day"]),
        window_start=start,
        window_end=end,
        items=tuple(DigestItem(**item) for item in data["items"]),
    )
