"""Silences as pure rules: which one holds a watch at a moment, and how people's durations and
end times are read (strictly, with a bound)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.core.silences import (
    BadSilence,
    Matchers,
    Silence,
    check_text,
    holding_silence,
    parse_duration,
    parse_until,
    silence_end,
)

NOW = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


def _silence(
    silence_id: int, matchers: Matchers, *, hours: float = 1, start: datetime = NOW
) -> Silence:
    return Silence(silence_id, matchers, start, start + timedelta(hours=hours))


@pytest.mark.parametrize(
    ("matchers", "held"),
    [
        (Matchers(image_version_id=567890), True),
        (Matchers(image_version_id=1), False),
        (Matchers(account_service_id=1234), True),
        (Matchers(label_glob="EU fleet*"), True),
        (Matchers(label_glob="eu fleet*"), False),  # case-sensitive, as subscriptions' globs
        (Matchers(account_service_id=1234, label_glob="US*"), False),  # every matcher must agree
        (Matchers(image_version_id=567890, account_service_id=1234), True),
    ],
)
def test_a_silence_holds_the_watches_all_its_matchers_match(matchers: Matchers, held: bool) -> None:
    silence = _silence(1, matchers)
    assert silence.holds(1234, 567890, "EU fleet, build 1.4.2", NOW) is held


def test_a_silence_holds_from_its_start_until_just_before_its_end() -> None:
    silence = _silence(1, Matchers(image_version_id=7))
    assert not silence.holds(1, 7, "", NOW - timedelta(seconds=1))
    assert silence.holds(1, 7, "", NOW)
    assert silence.holds(1, 7, "", NOW + timedelta(minutes=59, seconds=59))
    assert not silence.holds(1, 7, "", NOW + timedelta(hours=1))


def test_of_several_the_one_ending_last_holds() -> None:
    short = _silence(1, Matchers(image_version_id=7), hours=1)
    long = _silence(2, Matchers(label_glob="*"), hours=3)
    assert holding_silence([short, long], 1, 7, "x", NOW) == long
    assert holding_silence([short], 1, 8, "x", NOW) is None


def test_a_silence_needs_a_matcher() -> None:
    with pytest.raises(BadSilence, match="needs a matcher"):
        Matchers()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 30d ", timedelta(days=30)),
    ],
)
def test_durations_are_a_whole_number_and_one_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "not a whole number of minutes, hours or days (write 30m, 2h or 1d)"),
        ("2 h", "not a whole number"),
        ("1.5h", "not a whole number"),
        ("0h", "not a whole number"),
        ("-1h", "not a whole number"),
        ("2H", "not a whole number"),
        ("1h30m", "not a whole number"),
        ("٢h", "not a whole number"),  # an Arabic-Indic digit is a digit to Python, not to us
        ("31d", "longer than the most a silence may last, 30d"),
        ("721h", "longer than the most"),
        ("9" * 400 + "m", "not a whole number"),
    ],
)
def test_a_bad_duration_is_one_line_saying_how_to_write_it(text: str, message: str) -> None:
    with pytest.raises(BadSilence) as caught:
        parse_duration(text)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 120


def test_until_must_be_a_zoned_time_between_a_minute_and_30_days_away() -> None:
    assert silence_end(NOW, duration=None, until=parse_until("2026-11-28T19:00:00+01:00")) == (
        NOW + timedelta(hours=1)
    )
    for text, message in [
        ("2026-11-28T17:00:30Z", "at least a minute in the future"),
        ("2026-12-29T17:00:01Z", "more than 30 days away"),
    ]:
        with pytest.raises(BadSilence, match=message):
            silence_end(NOW, duration=None, until=parse_until(text))
    with pytest.raises(BadSilence, match="needs a time zone"):
        parse_until("2026-11-28T19:00:00")
    with pytest.raises(BadSilence, match="not an RFC 3339 time"):
        parse_until("next tuesday")
    with pytest.raises(BadSilence, match="not both"):
        silence_end(NOW, duration=timedelta(hours=1), until=NOW + timedelta(hours=2))


def test_reasons_and_authors_are_one_bounded_line() -> None:
    assert check_text("reason", "  flaky builder ", 500) == "flaky builder"
    with pytest.raises(BadSilence, match="one line"):
        check_text("reason", "a\nb", 500)
    with pytest.raises(BadSilence, match="longer than 10 characters"):
        check_text("reason", "x" * 11, 10)
