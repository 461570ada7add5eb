"""The one UTC helper: every time the service shows or stores is aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from notifier.core.clock import as_utc, utc_now


def test_a_naive_time_is_taken_to_be_utc_not_local_time() -> None:
    naive = datetime(2026, 11, 28, 17, 4, 5)  # noqa: DTZ001 - the point of the test
    assert as_utc(naive) == datetime(2026, 11, 28, 17, 4, 5, tzinfo=UTC)


def test_an_aware_time_is_converted_and_a_utc_one_is_kept() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 28, 18, 4, 5, tzinfo=berlin_winter)
    converted = as_utc(moment)
    assert converted == moment
    assert converted.tzinfo is UTC
    assert converted.hour == 17
    now = utc_now()
    assert as_utc(now) is now
