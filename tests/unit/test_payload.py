"""The webhook body is a public contract: these tests pin it to the example in DESIGN.md."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core.events import FAILED_EVENT, Event
from notifier.core.status import COMPLETE, FAILED
from notifier.notify.payload import encode_payload, rfc3339, webhook_payload
from tests.conftest import make_event
from tests.support.samples import DETECTED
from tests.support.samples import example_status as _status

DESIGN_EXAMPLE = {
    "type": "imageversion.failed",
    "version": 2,
    "timestamp": "2026-11-28T17:04:05Z",
    "data": {
        "account_service_id": 1234,
        "image_version_id": 567890,
        "label": "EU fleet, build 1.4.2",
        "owners": [],
        "previous": {"state_id": 4, "state": "Running", "progress": 80},
        "current": {
            "state_id": 6,
            "state": "Failed",
            "progress": 80,
            "error": "Image locked by diffid 42",
            "eta": "2026-11-28T17:10:00Z",
            "failed_count": 1,
            "updated": "2026-11-28T17:04:01Z",
        },
    },
}


def _design_example_event() -> Event:
    return make_event(
        type=FAILED_EVENT,
        event_id="evt_01JDQ0000000000000000000",
        occurred_at=DETECTED.replace(microsecond=734_000),
        previous=_status(),
        current=_status(
            state_id=FAILED,
            state="Failed",
            error="Image locked by diffid 42",
            failed_count=1,
            updated=datetime(2026, 11, 28, 17, 4, 1, tzinfo=UTC),
        ),
    )


def test_payload_equals_the_design_example() -> None:
    assert webhook_payload(_design_example_event()) == DESIGN_EXAMPLE


def test_the_watch_owners_ride_along_as_data_owners() -> None:
    event = replace(_design_example_event(), owners=("<@U024BE7LH>", "<!subteam^SAZ94GDB8>"))

    assert webhook_payload(event)["data"]["owners"] == ["<@U024BE7LH>", "<!subteam^SAZ94GDB8>"]


def test_first_sighting_and_missing_upstream_values_are_null() -> None:
    event = make_event(
        _status(
            image_version_id=2, state_id=None, state="Rebuilding", eta=None, updated=None, error=""
        ),
        event_id="evt_1",
        occurred_at=DETECTED,
        account_service_id=1,
        label="",
    )

    payload = webhook_payload(event)

    assert payload["data"]["previous"] is None
    assert payload["data"]["current"] == {
        "state_id": None,
        "state": "Rebuilding",
        "progress": 80,
        "error": None,
        "eta": None,
        "failed_count": 0,
        "updated": None,
    }


def test_upstream_spelling_of_a_known_state_is_reported_by_its_documented_name() -> None:
    completed = _status(state_id=COMPLETE, state="Completed", progress=100)

    payload = webhook_payload(replace(_design_example_event(), current=completed))

    assert payload["data"]["current"]["state"] == "Complete"


def test_times_are_converted_to_utc_with_a_z_and_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert rfc3339(datetime(2026, 11, 28, 19, 4, 5, 999_999, tzinfo=plus_two)) == (
        "2026-11-28T17:04:05Z"
    )
    assert rfc3339(datetime(2026, 11, 28, 17, 4, 5)) == "2026-11-28T17:04:05Z"  # noqa: DTZ001
    assert rfc3339(None) is None


def test_utc_times_lose_their_fraction_and_keep_every_field_zero_padded() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert rfc3339(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2026-12-31T23:59:59Z"
    assert rfc3339(datetime(2027, 1, 1, tzinfo=UTC)) == "2027-01-01T00:00:00Z"


@given(moment=st.datetimes(timezones=st.just(UTC)))
def test_every_utc_time_reads_as_isoformat_to_the_second_with_a_z(moment: datetime) -> None:
    assert rfc3339(moment) == moment.isoformat(timespec="seconds")[:19] + "Z"


def test_encoded_payload_is_compact_utf8_json() -> None:
    event = replace(_design_example_event(), label="Flotte EU — build 1.4.2")

    body = encode_payload(webhook_payload(event))

    assert b", " not in body
    assert b": " not in body
    assert "Flotte EU — build 1.4.2".encode() in body
    assert json.loads(body) == webhook_payload(event)


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(label=_TEXT, error=_TEXT, extra=_JSON_VALUES)
def test_encoded_payload_is_byte_for_byte_what_json_dumps_compact_writes(
    label: str, error: str, extra: object
) -> None:
    # Receivers verify signatures over these bytes, and earlier releases wrote them with
    # json.dumps(ensure_ascii=False, separators=(",", ":")): any text (control characters,
    # U+2028, non-Latin scripts) and any JSON value a template may add must encode the same.
    event = replace(_design_example_event(), label=label)
    payload = webhook_payload(event)
    payload["data"]["current"]["error"] = error
    payload["extra"] = extra

    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert encode_payload(payload) == expected
