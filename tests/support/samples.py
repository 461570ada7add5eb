"""The job of DESIGN.md's webhook example, the one the payload, rendering and sink tests speak
about: image version 567890 ("EU fleet, build 1.4.2"), Running at 80 % with an ETA of 17:10,
failing at 17:04."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from notifier.core.status import RUNNING, JobStatus
from tests.conftest import make_status

ETA = datetime(2026, 11, 28, 17, 10, tzinfo=UTC)
DETECTED = datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)
"""When the example's failure was seen: the payload's ``timestamp``."""

_RUNNING = replace(
    make_status(RUNNING, 80, eta=ETA, updated=datetime(2026, 11, 28, 17, 0, tzinfo=UTC)),
    created=datetime(2026, 11, 28, 16, 0, tzinfo=UTC),
    started=datetime(2026, 11, 28, 16, 5, tzinfo=UTC),
)


def example_status(**changes: Any) -> JobStatus:
    """The example's job as last seen Running (updated 17:00), with ``changes``."""
    return replace(_RUNNING, **changes)
