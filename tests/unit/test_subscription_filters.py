"""Each subscription filter, a pure function, selects exactly the events it should."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from notifier.core.events import COMPLETED, FAILED_EVENT, POLL_FAILING, STATE_CHANGED, Event
from notifier.core.subscriptions import (
    by_account_service,
    by_event_type,
    by_image_version,
    by_label,
    by_state,
    matches,
)
from tests.conftest import make_event, make_status, make_subscription

# A grid of events differing in every filtered attribute: each filter must pick exactly its rows.
EVENTS: list[Event] = [
    make_event(make_status(3, 0), type=STATE_CHANGED, label="EU fleet, build 1.4.2"),
    make_event(make_status(4, 40), type=STATE_CHANGED, label="US fleet, build 1.4.2"),
    make_event(
        make_status(5, 100, image_version_id=111), type=COMPLETED, label="EU fleet, build 1.5.0"
    ),
    make_event(
        make_status(6, 40, image_version_id=222),
        type=FAILED_EVENT,
        label="eu fleet, build 1.5.0",
        account_service_id=999,
    ),
    make_event(make_status(None, 0, state="Weird"), type=POLL_FAILING, label=""),
]


def _selected(check: object, **filters: Any) -> list[int]:
    subscription = make_subscription(**filters)
    return [i for i, event in enumerate(EVENTS) if check(subscription, event)]  # type: ignore[operator]


def test_event_type_filter_selects_exactly_the_named_types() -> None:
    assert _selected(by_event_type, event_types=frozenset({COMPLETED, FAILED_EVENT})) == [2, 3]
    assert _selected(by_event_type, event_types=frozenset({POLL_FAILING})) == [4]


def test_state_filter_selects_the_current_state_and_never_an_unnamed_one() -> None:
    assert _selected(by_state, states=frozenset({"Running", "Failed"})) == [1, 3]
    # Upstream's "Completed" spelling names the same state as "Complete".
    assert _selected(by_state, states=frozenset({"completed"})) == [2]


def test_account_service_filter_selects_exactly_those_accounts() -> None:
    assert _selected(by_account_service, account_service_ids=frozenset({999})) == [3]
    assert _selected(by_account_service, account_service_ids=frozenset({1234})) == [0, 1, 2, 4]


def test_image_version_filter_selects_exactly_those_image_versions() -> None:
    assert _selected(by_image_version, image_version_ids=frozenset({111, 222})) == [2, 3]


def test_label_glob_is_shell_style_and_case_sensitive() -> None:
    assert _selected(by_label, label_glob="EU fleet*") == [0, 2]
    assert _selected(by_label, label_glob="*build 1.5.?") == [2, 3]
    assert _selected(by_label, label_glob="[EU]* fleet, build 1.4.2") == [0, 1]
    assert _selected(by_label, label_glob="") == [4]


@pytest.mark.parametrize(
    "check", [by_event_type, by_state, by_account_service, by_image_version, by_label]
)
def test_an_empty_filter_lets_every_event_through(check: object) -> None:
    assert _selected(check) == list(range(len(EVENTS)))


def test_matches_requires_every_filter_to_agree() -> None:
    subscription = make_subscription(
        event_types=frozenset({COMPLETED, FAILED_EVENT}),
        states=frozenset({"Complete", "Failed"}),
        label_glob="EU*",
    )
    assert [i for i, e in enumerate(EVENTS) if matches(subscription, e)] == [2]
    assert not matches(replace(subscription, image_version_ids=frozenset({222})), EVENTS[2])
