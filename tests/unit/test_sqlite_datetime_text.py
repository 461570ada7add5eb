"""The text a datetime is stored as on SQLite: the dialect's own DATETIME format of its UTC time,
exactly, so rows written through UTCDateTime and by SQLAlchemy's DateTime compare and sort alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from notifier.store.tables import UTCDateTime

_DIALECT = sqlite.dialect()
# As SQLAlchemy calls them: through the type's implementation for the dialect.
_OURS = UTCDateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT)
_READ = UTCDateTime().dialect_impl(_DIALECT).result_processor(_DIALECT, None)
_SQLALCHEMYS = DateTime().dialect_impl(_DIALECT).bind_processor(_DIALECT)


@given(moment=st.datetimes(timezones=st.just(UTC)))
def test_a_utc_time_is_stored_as_the_dialects_own_text_and_read_back_unchanged(
    moment: datetime,
) -> None:
    assert _OURS is not None
    assert _READ is not None
    assert _SQLALCHEMYS is not None
    text = _OURS(moment)

    assert text == _SQLALCHEMYS(moment.replace(tzinfo=None))
    assert _READ(text) == moment


def test_a_time_in_another_zone_is_stored_as_its_utc_text() -> None:
    assert _OURS is not None
    plus_two = timezone(timedelta(hours=2))

    assert _OURS(datetime(2026, 1, 1, 1, 2, 3, tzinfo=plus_two)) == "2025-12-31 23:02:03.000000"


def test_a_naive_time_is_refused_naming_the_fix() -> None:
    assert _OURS is not None
    with pytest.raises(ValueError, match="naive datetime given to the store"):
        _OURS(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive time under test
