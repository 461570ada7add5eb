"""The status page's pure presentation: relative times and the state timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notifier.api.timeline import relative_time, state_bands, timeline_svg
from notifier.core.events import ETA_CHANGED
from tests.conftest import T0, make_event, make_status


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=10), "now"),
        (timedelta(minutes=12), "in 12 min"),
        (-timedelta(minutes=3), "3 min ago"),
        (timedelta(hours=5), "in 5 h"),
        (-timedelta(days=3), "3 d ago"),
    ],
)
def test_relative_time_reads_like_a_person_would_say_it(offset: timedelta, text: str) -> None:
    assert relative_time(T0 + offset, T0) == text


def test_no_time_is_a_dash() -> None:
    assert relative_time(None, T0) == "—"


def test_each_state_lasts_until_the_next_change_and_the_last_until_now() -> None:
    events = [
        make_event(make_status(3), event_id="a", occurred_at=T0),
        make_event(make_status(4, 50), event_id="b", occurred_at=T0 + timedelta(minutes=5)),
        make_event(
            make_status(4, 60),
            event_id="c",
            type=ETA_CHANGED,
            occurred_at=T0 + timedelta(minutes=6),
        ),
    ]
    now = T0 + timedelta(minutes=9)
    bands = state_bands(list(reversed(events)), now)
    assert [(b.state, b.start, b.end) for b in bands] == [
        ("Queued", T0, T0 + timedelta(minutes=5)),
        ("Running", T0 + timedelta(minutes=5), now),
    ]


def test_svg_has_one_coloured_band_per_state_proportional_to_time() -> None:
    events = [
        make_event(make_status(3), event_id="a", occurred_at=T0),
        make_event(make_status(4), event_id="b", occurred_at=T0 + timedelta(minutes=1)),
    ]
    svg = timeline_svg(events, T0 + timedelta(minutes=4))
    assert svg.startswith("<svg")
    assert 'data-state="Queued" x="0.0" y="10" width="150.0"' in svg
    assert 'data-state="Running" x="150.0" y="10" width="450.0"' in svg


def test_svg_without_state_changes_says_so() -> None:
    assert "no state changes yet" in timeline_svg([], T0)
