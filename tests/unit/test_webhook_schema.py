"""Every payload the service emits validates against docs/webhook-payload.schema.json."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from notifier.core.detector import detect
from notifier.core.events import DIGEST_DAILY, EVENT_TYPES, Event
from notifier.core.status import (
    COMPLETE,
    CREATED,
    FAILED,
    PENDING,
    QUEUED,
    RUNNING,
    SQUASHED,
    JobStatus,
)
from notifier.notify.payload import digest_payload, webhook_payload
from notifier.notify.samples import sample_digest, sample_events
from tests.conftest import T0, make_status

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "webhook-payload.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _lifecycle(final: JobStatus, image_version_id: int) -> list[JobStatus]:
    def at(state_id: int | None, progress: int, **kw: Any) -> JobStatus:
        return make_status(state_id, progress, image_version_id=image_version_id, **kw)

    return [
        at(CREATED, 0),
        at(PENDING, 0),
        at(QUEUED, 0),
        at(RUNNING, 10, eta=T0),
        at(None, 30, state="Rebalancing", eta=T0),  # a state upstream invented: no event
        at(RUNNING, 60, eta=T0),
        final,
    ]


def _scripted_events() -> list[Event]:
    """What the detector emits over a full lifecycle ending in each terminal state."""
    events: list[Event] = []
    counter = itertools.count(1)
    for image_version_id, final in (
        (101, make_status(COMPLETE, 100, image_version_id=101)),
        (
            102,
            make_status(FAILED, 60, image_version_id=102, error='Image "locked"', failed_count=2),
        ),
        (103, make_status(SQUASHED, 60, image_version_id=103)),
    ):
        previous: JobStatus | None = None
        for status in _lifecycle(final, image_version_id):
            for found in detect(previous, status):
                events.append(
                    Event(
                        id=f"evt_{next(counter)}",
                        type=found.type,
                        occurred_at=T0,
                        account_service_id=1234,
                        image_version_id=image_version_id,
                        label="EU fleet, build 1.4.2",
                        previous=found.previous,
                        current=found.current,
                        detail=found.detail,
                    )
                )
            previous = status if status.state_id is not None else previous
    return events


def test_every_payload_of_a_scripted_lifecycle_validates(
    validator: jsonschema.Draft202012Validator,
) -> None:
    events = _scripted_events()
    types = {e.type for e in events}
    assert types == {
        "imageversion.state_changed",
        "imageversion.completed",
        "imageversion.failed",
        "imageversion.squashed",
    }
    for event in events:
        validator.validate(webhook_payload(event))


def test_a_payload_of_every_event_type_validates(
    validator: jsonschema.Draft202012Validator,
) -> None:
    samples = sample_events()
    assert {e.type for e in samples} == set(EVENT_TYPES)
    for event in samples:
        validator.validate(webhook_payload(event))


def test_the_schema_defines_each_event_type_and_nothing_else() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    refs = {entry["$ref"].removeprefix("#/$defs/") for entry in schema["oneOf"]}
    assert refs == {*EVENT_TYPES, DIGEST_DAILY}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("type",), "imageversion.exploded"),
        (("version",), 1),
        (("data", "owners"), ["@alice"]),
        (("timestamp",), "2026-11-28 17:04:05"),
        (("data", "current", "progress"), 101),
        (("data", "current", "state"), "Running"),  # a failed event must be in state Failed
        (("data", "renamed_field"), 1),
    ],
)
def test_the_schema_rejects_a_payload_off_the_contract(
    validator: jsonschema.Draft202012Validator, path: tuple[str, ...], value: Any
) -> None:
    payload = webhook_payload(next(e for e in sample_events() if e.type == "imageversion.failed"))
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not validator.is_valid(payload)


def test_a_payload_with_owners_validates(validator: jsonschema.Draft202012Validator) -> None:
    event = replace(sample_events()[3], owners=("<@U024BE7LH>", "<!subteam^SAZ94GDB8>"))

    validator.validate(webhook_payload(event))


def test_a_daily_digest_payload_validates(validator: jsonschema.Draft202012Validator) -> None:
    payload = digest_payload(sample_digest())

    validator.validate(payload)
    assert payload["type"] == "digest.daily"
    assert payload["data"]["counts"]["failed"] == 1


def test_a_digest_without_jobs_is_off_the_contract(
    validator: jsonschema.Draft202012Validator,
) -> None:
    payload = digest_payload(sample_digest())
    payload["data"]["jobs"] = []

    assert not validator.is_valid(payload)
