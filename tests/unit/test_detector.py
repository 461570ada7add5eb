"""The transition detector, table-driven over the documented states, plus its properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.core.detector import carry_known_state, detect
from notifier.core.events import STATE_CHANGED, TERMINAL_EVENT_FOR_STATE
from notifier.core.status import STATE_NAMES, TERMINAL_STATES
from tests.conftest import make_status


@pytest.mark.parametrize("state_id", sorted(STATE_NAMES))
def test_first_sighting_is_a_state_change_from_nothing(state_id: int) -> None:
    events = detect(None, make_status(state_id))
    assert events[0].type == STATE_CHANGED
    assert events[0].previous is None
    expected = [STATE_CHANGED]
    if state_id in TERMINAL_STATES:
        expected.append(TERMINAL_EVENT_FOR_STATE[state_id])
    assert [e.type for e in events] == expected


@pytest.mark.parametrize(
    ("before", "after", "types"),
    [
        (1, 2, [STATE_CHANGED]),
        (2, 3, [STATE_CHANGED]),
        (3, 4, [STATE_CHANGED]),
        (4, 5, [STATE_CHANGED, "imageversion.completed"]),
        (4, 6, [STATE_CHANGED, "imageversion.failed"]),
        (3, 7, [STATE_CHANGED, "imageversion.squashed"]),
        (6, 3, [STATE_CHANGED]),  # a failed job retried upstream goes back to Queued
        (4, 8, [STATE_CHANGED]),  # a state upstream added after our table was written
    ],
    ids=lambda v: str(v),
)
def test_state_change_emits_the_documented_events(
    before: int, after: int, types: list[str]
) -> None:
    previous = make_status(before)
    events = detect(previous, make_status(after, state="Verifying" if after == 8 else None))
    assert [e.type for e in events] == types
    assert all(e.previous == previous for e in events)


def test_queued_straight_to_complete_is_one_change_without_invented_running() -> None:
    events = detect(make_status(3), make_status(5, 100))
    assert [(e.previous.state if e.previous else None, e.current.state) for e in events] == [
        ("Queued", "Complete"),
        ("Queued", "Complete"),
    ]
    assert [e.type for e in events] == [STATE_CHANGED, "imageversion.completed"]


def test_progress_only_change_is_not_a_state_change() -> None:
    assert detect(make_status(4, 10), make_status(4, 60)) == []


def test_unknown_state_is_never_a_change_to_nothing() -> None:
    unknown = make_status(None, 50, state="Unknown")
    assert detect(make_status(4, 40), unknown) == []
    assert detect(None, unknown) == []


def test_unknown_state_keeps_the_last_known_state_but_takes_new_progress() -> None:
    kept = carry_known_state(make_status(4, 40), make_status(None, 55, state="Unknown"))
    assert (kept.state_id, kept.state, kept.progress) == (4, "Running", 55)


states = st.one_of(st.none(), st.integers(min_value=1, max_value=9))


@given(st.lists(st.tuples(states, st.integers(0, 100)), min_size=1, max_size=30))
def test_any_sequence_of_statuses_yields_a_chain_of_changes(
    sequence: list[tuple[int | None, int]],
) -> None:
    remembered = None
    changes = []
    for state_id, progress in sequence:
        observed = make_status(state_id, progress, state=None if state_id in STATE_NAMES else "X")
        events = detect(remembered, observed)
        changes += [e for e in events if e.type == STATE_CHANGED]
        terminal = [e for e in events if e.type != STATE_CHANGED]
        # At most one terminal event, and only on entering a terminal state.
        assert len(terminal) <= 1
        if terminal:
            assert observed.state_id in TERMINAL_STATES
            assert remembered is None or remembered.state_id != observed.state_id
        if remembered is not None and remembered.state_id == observed.state_id:
            assert events == []
        remembered = carry_known_state(remembered, observed)
    for before, after in itertools.pairwise(changes):
        assert after.previous is not None
        assert after.previous.state_id == before.current.state_id
