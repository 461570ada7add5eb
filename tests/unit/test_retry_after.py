"""The one ``Retry-After`` reading shared by the Clanforge client, the webhook sink and Slack."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.clanforge.reply import MAX_RETRY_AFTER
from notifier.core.clock import utc_now
from notifier.core.retry_after import parse_retry_after

NOW = datetime(2026, 11, 28, 17, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 1.5 ", 1.5, id="fractional-seconds"),
        pytest.param("-4", 0.0, id="negative-means-now"),
        pytest.param("Sat, 28 Nov 2026 17:00:30 GMT", 30.0, id="http-date"),
        pytest.param("Sat, 28 Nov 2026 16:00:00 GMT", 0.0, id="http-date-in-the-past"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        pytest.param("tomorrow", None, id="garbage"),
        pytest.param("soon", None, id="a-word"),
        pytest.param("inf", None, id="infinity"),
        pytest.param("nan", None, id="not-a-number"),
        pytest.param("1e3", None, id="exponent-is-not-http"),
    ],
)
def test_retry_after_as_seconds_or_http_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("99999999999999999999", id="absurd-seconds"),
        pytest.param("Fri, 01 Jan 2100 00:00:00 GMT", id="far-date"),
    ],
)
def test_a_caller_may_cap_what_it_takes_at_face_value(value: str) -> None:
    assert parse_retry_after(value, NOW, cap=MAX_RETRY_AFTER) == MAX_RETRY_AFTER
    uncapped = parse_retry_after(value, NOW)
    assert uncapped is not None
    assert uncapped > MAX_RETRY_AFTER


def test_without_a_given_time_a_date_counts_from_the_clock() -> None:
    in_two_minutes = datetime.fromtimestamp(utc_now().timestamp() + 120, UTC)
    seconds = parse_retry_after(in_two_minutes.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None
    assert 115 <= seconds <= 120
