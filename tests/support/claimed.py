"""A watch as a claim hands it to the poll plan: EU fleet (567890), watch 7, with what the
store remembers of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import count

from notifier.core.poll_plan import ClaimedWatch
from notifier.core.status import JobStatus
from notifier.core.timing import Tracking
from tests.support.clock import T0


def due(
    previous: JobStatus | None = None, poll_errors: int = 0, tracking: Tracking | None = None
) -> ClaimedWatch:
    """Watch 7, claimed at T0; with a ``previous`` status seen three minutes before."""
    return ClaimedWatch(
        tracking=tracking,
        watch_id=7,
        account_service_id=1234,
        image_version_id=567890,
        label="EU fleet",
        poll_errors=poll_errors,
        previous=previous,
        state_since=None if previous is None else T0 - timedelta(minutes=3),
    )


def ids() -> Callable[[], str]:
    """Event ids evt_1, evt_2, ... in the order they are asked for."""
    counter = count(1)
    return lambda: f"evt_{next(counter)}"
