"""The events kept in memory for the dispatcher's claims: the newest, up to a bound."""

from __future__ import annotations

import pytest

from notifier.store.recent_events import RecentEvents
from tests.conftest import make_event


def test_recent_events_keep_the_newest_up_to_their_capacity() -> None:
    recent = RecentEvents(capacity=2)
    first, second, third = (make_event(event_id=f"evt_{n}") for n in range(3))
    recent.add([first, second])
    recent.add([third])
    assert (recent.get("evt_0"), recent.get("evt_1"), recent.get("evt_2")) == (None, second, third)
    assert len(recent) == 2


def test_recent_events_need_room_for_one() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        RecentEvents(capacity=0)
