"""How every upstream reply we know of, documented or merely likely, maps to status or error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.clanforge.reply import (
    MAX_JOB_ERROR,
    MAX_RETRY_AFTER,
    parse_status_reply,
)
from notifier.core.status import JobStatus
from notifier.core.upstream_errors import (
    ACCESS_DENIED,
    BAD_REPLY,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UpstreamError,
)

ASID = 1234
IVID = 567890
NOW = datetime(2026, 11, 28, 17, 0, 0, tzinfo=UTC)
T_CREATED = 1764349000
T_START = 1764349445
T_UPDATED = 1764349500
T_ETA = 1764350000


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def upstream(**changes: Any) -> dict[str, Any]:
    """A well-formed upstream body (Running, 40 %); ``changes`` override or, as ``DROP``, remove."""
    body: dict[str, Any] = {
        "imageversionid": IVID,
        "jobcreated": T_CREATED,
        "joberror": "",
        "jobeta": T_ETA,
        "jobfailed": 0,
        "jobprogress": 40,
        "jobstart": str(T_START),
        "jobstateid": 4,
        "jobstatename": "Running",
        "jobupdated": T_UPDATED,
        "success": True,
    }
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


DROP = object()


def parse(body: dict[str, Any] | bytes, status: int = 200, **kwargs: Any) -> JobStatus:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_status_reply(
        status, raw, account_service_id=ASID, image_version_id=IVID, now=NOW, **kwargs
    )


def test_documented_example_maps_every_field() -> None:
    status = parse(upstream(joberror="Image locked by diffid 42", jobfailed=1))

    assert status == JobStatus(
        image_version_id=IVID,
        state_id=4,
        state="Running",
        progress=40,
        eta=_utc(T_ETA),
        error="Image locked by diffid 42",
        failed_count=1,
        created=_utc(T_CREATED),
        started=_utc(T_START),
        updated=_utc(T_UPDATED),
    )
    assert status.started is not None
    assert status.started.tzinfo is UTC


# --- states --------------------------------------------------------------------------------------

STATE_CASES = [
    pytest.param({"jobstateid": 1, "jobstatename": "Created"}, 1, "Created", id="created"),
    pytest.param({"jobstateid": 2, "jobstatename": "Pending"}, 2, "Pending", id="pending"),
    pytest.param({"jobstateid": 3, "jobstatename": "Queued"}, 3, "Queued", id="queued"),
    pytest.param({"jobstateid": 4, "jobstatename": "Running"}, 4, "Running", id="running"),
    pytest.param(
        {"jobstateid": 5, "jobstatename": "Completed"}, 5, "Complete", id="completed-normalised"
    ),
    pytest.param({"jobstateid": 6, "jobstatename": "Failed"}, 6, "Failed", id="failed"),
    pytest.param({"jobstateid": 7, "jobstatename": "Squashed"}, 7, "Squashed", id="squashed"),
    pytest.param(
        {"jobstateid": 8, "jobstatename": "Verifying"}, 8, "Verifying", id="unknown-id-keeps-name"
    ),
    pytest.param({"jobstateid": 8, "jobstatename": DROP}, 8, "Unknown", id="unknown-id-no-name"),
    pytest.param(
        {"jobstateid": DROP, "jobstatename": "Queued"}, 3, "Queued", id="missing-id-known-name"
    ),
    pytest.param(
        {"jobstateid": None, "jobstatename": "Completed"}, 5, "Complete", id="null-id-known-name"
    ),
    pytest.param(
        {"jobstateid": None, "jobstatename": " running "}, 4, "Running", id="null-id-name-any-case"
    ),
    pytest.param(
        {"jobstateid": None, "jobstatename": "Verifying"},
        None,
        "Verifying",
        id="null-id-unknown-name",
    ),
    pytest.param({"jobstateid": "6"}, 6, "Failed", id="id-as-digit-string"),
    pytest.param({"jobstateid": 4.0}, 4, "Running", id="id-as-integral-float"),
    pytest.param({"jobstateid": 0, "jobstatename": "Queued"}, 3, "Queued", id="id-zero-is-no-id"),
    pytest.param(
        {"jobstateid": True, "jobstatename": "Pending"}, 2, "Pending", id="bool-id-is-no-id"
    ),
    pytest.param({"jobstateid": 6, "jobstatename": "Running"}, 6, "Failed", id="id-wins-over-name"),
]


@pytest.mark.parametrize(("changes", "state_id", "state"), STATE_CASES)
def test_state_id_and_name(changes: dict[str, Any], state_id: int | None, state: str) -> None:
    status = parse(upstream(**changes))

    assert (status.state_id, status.state) == (state_id, state)


def test_missing_state_id_falls_back_to_state_name() -> None:
    status = parse(upstream(jobstateid=DROP, jobstatename="Failed"))

    assert status.state_id == 6
    assert status.is_terminal


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"jobstateid": DROP, "jobstatename": DROP}, id="both-missing"),
        pytest.param({"jobstateid": None, "jobstatename": None}, id="both-null"),
        pytest.param({"jobstateid": None, "jobstatename": "  "}, id="blank-name"),
        pytest.param({"jobstateid": "four", "jobstatename": 4}, id="both-garbage"),
    ],
)
def test_reply_without_any_state_is_a_bad_reply(changes: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse(upstream(**changes))

    assert caught.value.reason == BAD_REPLY
    assert "neither jobstateid nor jobstatename" in caught.value.message


# --- times, progress, error, failed count --------------------------------------------------------

FIELD_CASES = [
    pytest.param("jobstart", str(T_START), "started", _utc(T_START), id="start-digit-string"),
    pytest.param("jobstart", T_START, "started", _utc(T_START), id="start-int"),
    pytest.param("jobstart", "", "started", None, id="start-empty-string"),
    pytest.param("jobstart", "0", "started", None, id="start-zero-string"),
    pytest.param("jobstart", None, "started", None, id="start-null"),
    pytest.param("jobstart", DROP, "started", None, id="start-absent"),
    pytest.param("jobstart", "soon", "started", None, id="start-garbage"),
    pytest.param("jobstart", 10**30, "started", None, id="start-absurdly-large"),
    pytest.param("jobstart", -5, "started", None, id="start-negative"),
    pytest.param("jobstart", 1764349445000, "started", None, id="start-in-milliseconds"),
    pytest.param("jobeta", 0, "eta", None, id="eta-zero"),
    pytest.param("jobeta", DROP, "eta", None, id="eta-absent"),
    pytest.param("jobeta", None, "eta", None, id="eta-null"),
    pytest.param("jobeta", T_ETA, "eta", _utc(T_ETA), id="eta-set"),
    pytest.param("jobupdated", DROP, "updated", None, id="updated-absent"),
    pytest.param("jobcreated", True, "created", None, id="created-bool"),
    pytest.param("jobprogress", 140, "progress", 100, id="progress-clamped-high"),
    pytest.param("jobprogress", -3, "progress", 0, id="progress-clamped-low"),
    pytest.param("jobprogress", "55", "progress", 55, id="progress-digit-string"),
    pytest.param("jobprogress", 55.9, "progress", 55, id="progress-float-floored"),
    pytest.param("jobprogress", DROP, "progress", 0, id="progress-absent"),
    pytest.param("jobprogress", "lots", "progress", 0, id="progress-garbage"),
    pytest.param("jobprogress", True, "progress", 0, id="progress-bool"),
    pytest.param("jobprogress", 10**400, "progress", 100, id="progress-huge-int"),
    pytest.param("joberror", "", "error", None, id="error-empty"),
    pytest.param("joberror", "   ", "error", None, id="error-blank"),
    pytest.param("joberror", None, "error", None, id="error-null"),
    pytest.param(
        "joberror", " <b>locked</b> & `x` ", "error", "<b>locked</b> & `x`", id="error-kept"
    ),
    pytest.param("jobfailed", 2, "failed_count", 2, id="failed-count"),
    pytest.param("jobfailed", DROP, "failed_count", 0, id="failed-absent"),
    pytest.param("jobfailed", True, "failed_count", 0, id="failed-bool"),
    pytest.param("jobfailed", -1, "failed_count", 0, id="failed-negative"),
]


@pytest.mark.parametrize(("key", "value", "attribute", "expected"), FIELD_CASES)
def test_optional_fields_degrade_to_neutral_values(
    key: str, value: Any, attribute: str, expected: Any
) -> None:
    status = parse(upstream(**{key: value}))

    assert getattr(status, attribute) == expected


def test_long_job_error_is_cut() -> None:
    status = parse(upstream(joberror="x" * (MAX_JOB_ERROR * 3)))

    assert status.error is not None
    assert len(status.error) == MAX_JOB_ERROR
    assert status.error.endswith("…")


# --- replies that carry no status ----------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        401, b'{"success": false, "error": "Invalid credentials"}', None,
        CREDENTIALS_REJECTED, "401", "Invalid credentials", None, id="401",
    ),
    pytest.param(
        403, b'{"success": false, "message": "No access to account service 1234"}', None,
        ACCESS_DENIED, "access denied", "No access to account service 1234", None, id="403",
    ),
    pytest.param(
        404, b'{"success": false, "errors": ["Image version not found"]}', None,
        NOT_FOUND, "image version not found", "Image version not found", None, id="404",
    ),
    pytest.param(
        429, b"", "30", RATE_LIMITED, "rate limited", "429", 30.0, id="429-retry-after-seconds",
    ),
    pytest.param(
        429, b"", "Sat, 28 Nov 2026 17:02:00 GMT", RATE_LIMITED, "rate limited", "429", 120.0,
        id="429-retry-after-http-date",
    ),
    pytest.param(
        429, b"", "whenever", RATE_LIMITED, "rate limited", "429", None,
        id="429-retry-after-garbage",
    ),
    pytest.param(
        500, b"<html><head><title>500 Internal Server Error</title></head><body>oops</body></html>",
        None, UNAVAILABLE, "500", "Internal Server Error", None, id="500-html",
    ),
    pytest.param(
        502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", None,
        UNAVAILABLE, "502", "502 Bad Gateway", None, id="502-html-without-title",
    ),
    pytest.param(
        503, b"Service Unavailable", "5", UNAVAILABLE, "503", "Service Unavailable", 5.0,
        id="503-text-retry-after",
    ),
    pytest.param(
        400, b'{"error": {"message": "accountserviceid is invalid"}}', None,
        BAD_REPLY, "unexpected HTTP status", "accountserviceid is invalid", None, id="400",
    ),
    pytest.param(
        301, b"", None, BAD_REPLY, "redirect", "not followed", None, id="301-redirect",
    ),
    pytest.param(
        200, b"<!DOCTYPE html><html><title>Maintenance</title></html>", None,
        BAD_REPLY, "HTML page instead of JSON", "Maintenance", None, id="200-html",
    ),
    pytest.param(
        200, b'{"imageversionid": 567890, "jobstateid": 4, "jobpro', None,
        BAD_REPLY, "not valid JSON", "truncated", None, id="200-truncated-json",
    ),
    pytest.param(
        200, b"", None, BAD_REPLY, "empty body", "200", None, id="200-empty",
    ),
    pytest.param(
        200, b'[{"jobstateid": 4}]', None, BAD_REPLY, "JSON an array", "not an object", None,
        id="200-json-array",
    ),
    pytest.param(
        200, b'"Running"', None, BAD_REPLY, "JSON a string", "not an object", None,
        id="200-json-string",
    ),
    pytest.param(
        200, b'{"success": false, "error": "Image version is archived"}', None,
        BAD_REPLY, "success is false", "Image version is archived", None, id="200-success-false",
    ),
    pytest.param(
        200, b'{"success": false}', None, BAD_REPLY, "success is false", "200", None,
        id="200-success-false-without-text",
    ),
    pytest.param(
        200, json.dumps(upstream(imageversionid=111)).encode(), None,
        BAD_REPLY, "image version 111", "not the one asked for", None,
        id="200-other-image-version",
    ),
    pytest.param(
        200, json.dumps(upstream(imageversionid=True)).encode(), None,
        BAD_REPLY, "imageversionid is not an integer", "True", None,
        id="200-bool-image-version",
    ),
    pytest.param(
        200, b"\xff\xfe\x00garbage", None, BAD_REPLY, "not valid JSON", "200", None,
        id="200-not-utf8",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "reason", "says", "also_says", "wait"), ERROR_CASES
)
def test_reply_without_status_raises_upstream_error(
    status: int,
    body: bytes,
    retry_after: str | None,
    reason: str,
    says: str,
    also_says: str,
    wait: float | None,
) -> None:
    with pytest.raises(UpstreamError) as caught:
        parse(body, status, retry_after=retry_after)

    error = caught.value
    assert error.reason == reason
    assert error.status == status
    assert error.retry_after == wait
    assert f"image version {IVID} (account service {ASID})" in error.message
    assert says in error.message
    assert also_says in error.message
    assert "\n" not in error.message
    assert str(error) == error.message


def test_redirect_message_names_the_target_without_credentials_or_query() -> None:
    with pytest.raises(UpstreamError) as caught:
        parse(b"", 301, location="https://user:pw@api.multiplay.co.uk/cfp/v1/x?token=abc")

    assert "https://api.multiplay.co.uk/cfp/v1/x" in caught.value.message
    assert "pw" not in caught.value.message
    assert "token" not in caught.value.message


def test_long_upstream_error_text_is_shortened_to_one_line() -> None:
    body = json.dumps({"success": False, "error": "line one\nline two " + "y" * 1000}).encode()

    with pytest.raises(UpstreamError) as caught:
        parse(body, 500)

    assert "line one line two" in caught.value.message
    assert len(caught.value.message) < 320


def test_missing_image_version_id_is_tolerated() -> None:
    assert parse(upstream(imageversionid=DROP)).image_version_id == IVID


def test_image_version_id_as_digit_string_is_accepted() -> None:
    assert parse(upstream(imageversionid=str(IVID))).state_id == 4


# --- property ------------------------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_plausible: dict[str, st.SearchStrategy[Any]] = {
    "imageversionid": st.sampled_from([IVID, str(IVID), 1, None, True, "x"]) | _json_values,
    "jobcreated": st.integers(min_value=-(2**64), max_value=2**64) | _json_values,
    "joberror": st.text(max_size=30) | _json_values,
    "jobeta": st.sampled_from([0, None, T_ETA, "0", ""]) | _json_values,
    "jobfailed": st.integers(min_value=-3, max_value=3) | _json_values,
    "jobprogress": st.integers(min_value=-500, max_value=500) | st.floats() | _json_values,
    "jobstart": st.sampled_from(["", "0", str(T_START), T_START, None, "1e9", "-1"])
    | st.text(max_size=12)
    | _json_values,
    "jobstateid": st.integers(min_value=-2, max_value=12) | _json_values,
    "jobstatename": st.sampled_from(["Completed", "Running", "Squashed", "", "Weird"])
    | _json_values,
    "jobupdated": st.floats() | _json_values,
    "success": st.sampled_from([True, False, "false", 0, 1, None]) | _json_values,
}
_bodies = st.fixed_dictionaries({}, optional=_plausible).map(
    lambda d: json.dumps(d).encode()
) | st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 200, 200, 201, 204, 301, 401, 403, 404, 429, 500, 503, 418]),
    body=_bodies,
    retry_after=st.none() | st.text(max_size=40),
)
def test_any_reply_gives_a_sane_status_or_an_upstream_error(
    status: int, body: bytes, retry_after: str | None
) -> None:
    result: JobStatus | UpstreamError
    try:
        result = parse(body, status, retry_after=retry_after)
    except UpstreamError as error:
        result = error
    if isinstance(result, UpstreamError):
        assert result.message
        assert "\n" not in result.message
        assert result.retry_after is None or 0 <= result.retry_after <= MAX_RETRY_AFTER
        return
    assert 200 <= status < 300
    assert 0 <= result.progress <= 100
    assert result.failed_count >= 0
    assert result.image_version_id == IVID
    assert result.state
    for moment in (result.eta, result.created, result.started, result.updated):
        assert moment is None or moment.tzinfo is UTC
