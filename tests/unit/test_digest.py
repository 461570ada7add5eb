"""The daily digest's rules: when it is due, its id, what it says; pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from notifier.core.digest import (
    DigestProblem,
    build_digest,
    digest_day,
    digest_id,
    duration_text,
    last_fire,
    parse_digest,
)
from notifier.core.events import RESUMED, STALLED, STATE_CHANGED, Event
from notifier.core.status import COMPLETE, FAILED, RUNNING
from notifier.notify.render_digest import MAX_LINES_PER_GROUP, render_digest
from notifier.notify.samples import sample_digest
from tests.conftest import make_event, make_status

BERLIN = parse_digest("09:00 Europe/Berlin")
END = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9:00 Europe/Berlin", "is not a digest time"),
        ("24:00 UTC", "is not a digest time"),
        ("09:00", "is not a digest time"),
        ("09:00 Europe/Atlantis", "unknown time zone 'Europe/Atlantis'"),
        ("09:00 ../../etc/passwd", "is not a digest time"),
    ],
)
def test_a_digest_time_that_is_no_time_and_zone_is_refused(text: str, says: str) -> None:
    with pytest.raises(DigestProblem, match=says):
        parse_digest(text)


def test_the_digest_is_due_at_local_time_across_a_daylight_saving_change() -> None:
    winter = datetime(2026, 12, 6, 8, 0, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 6, 7, 0, 30, tzinfo=UTC)
    assert last_fire(BERLIN, winter) == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    assert last_fire(BERLIN, summer) == datetime(2026, 7, 6, 7, 0, tzinfo=UTC)
    assert last_fire(BERLIN, winter - timedelta(minutes=1)) == datetime(
        2026, 12, 5, 8, 0, tzinfo=UTC
    )


def test_one_id_per_subscription_and_local_day() -> None:
    late = parse_digest("00:30 Asia/Tokyo")  # 15:30 UTC the day before
    fire = last_fire(late, datetime(2026, 11, 28, 16, 0, tzinfo=UTC))
    assert digest_day(late, fire) == "2026-11-29"
    assert digest_id(7, digest_day(late, fire)) == "dig_7_2026-11-29"


def test_each_job_is_listed_once_as_its_last_event_left_it_worst_first() -> None:
    digest = sample_digest()
    assert [(i.image_version_id, i.outcome) for i in digest.items] == [
        (567891, "failed"),
        (567893, "stalled"),
        (567892, "running"),
        (567890, "completed"),
    ]
    failed, stalled, running, completed = digest.items
    assert failed.error == "Image locked by diffid 42"
    assert completed.seconds == 9 * 60 + 1  # upstream's start (16:55) to its update (17:04:01)
    assert stalled.seconds == 30 * 60 + 14 * 3600 + 55 * 60 + 55  # stalled since 16:34:05
    assert running.seconds == 15 * 3600 + 5 * 60  # since upstream's start, 16:55


def test_a_job_that_moved_again_is_no_longer_stalled() -> None:
    running = replace(make_status(RUNNING, 40), started=END - timedelta(hours=2))
    stalled = make_event(running, running, type=STALLED, occurred_at=END - timedelta(hours=1))
    moving = make_event(running, running, type=RESUMED, occurred_at=END - timedelta(minutes=30))
    digest = build_digest(1, "2026-11-29", END, [stalled, moving])
    assert digest is not None
    [item] = digest.items
    assert (item.outcome, item.seconds) == ("running", 2 * 3600)


def test_a_day_without_events_has_no_digest() -> None:
    assert build_digest(1, "2026-11-29", END, []) is None


def test_jobs_unfinished_since_before_the_day_are_listed_and_finished_ones_are_not() -> None:
    def job(ivid: int, state: int, hours_ago: float, type: str = STATE_CHANGED) -> Event:
        status = replace(
            make_status(state, 40, image_version_id=ivid), started=END - timedelta(hours=50)
        )
        return make_event(status, status, type=type, occurred_at=END - timedelta(hours=hours_ago))

    stuck = job(501, RUNNING, 30, type=STALLED)
    finished_long_ago = job(502, COMPLETE, 40)
    also_in_the_day = job(503, RUNNING, 40)
    running = job(504, RUNNING, 36)
    digest = build_digest(
        1,
        "2026-11-29",
        END,
        [job(503, COMPLETE, 2)],
        [stuck, finished_long_ago, also_in_the_day, running],
    )
    assert digest is not None
    assert [(i.image_version_id, i.outcome, i.seconds) for i in digest.items] == [
        (501, "stalled", 30 * 3600),
        (504, "running", 50 * 3600),
        (503, "completed", 35 * 3600),  # upstream times: started 50 h before END, updated T0
    ]
    assert build_digest(1, "2026-11-29", END, [], [finished_long_ago]) is None


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (0, 59, 60, 252, 7500, 97200)] == [
        "0 s",
        "59 s",
        "1 min",
        "4 min 12 s",
        "2 h 5 min",
        "1 d 3 h",
    ]


def test_the_slack_digest_has_a_section_per_outcome_within_slack_limits() -> None:
    message = render_digest(sample_digest(), "09:00 Europe/Berlin")
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["header", "section", "section", "section", "section", "context"]
    assert message.text == (
        "Daily digest, 2026-11-29: 1 failed, 1 stalled, 1 still running, 1 completed"
    )
    assert "sent daily at 09:00 Europe/Berlin" in json.dumps(message.blocks)


def test_a_busy_day_is_cut_to_a_readable_digest() -> None:
    one = sample_digest().items[-1]
    many = tuple(replace(one, image_version_id=i, label="&" * 200) for i in range(1, 200))
    message = render_digest(replace(sample_digest(), items=many))
    [section] = [b for b in message.blocks if b["type"] == "section"]
    text = section["text"]["text"]
    assert len(text) <= 3000
    shown = text.count("\n•")
    assert 0 < shown <= MAX_LINES_PER_GROUP
    assert text.endswith(f"\n… and {199 - shown} more")
    assert all(line.endswith("took 9 min 1 s") for line in text.splitlines()[1:-1])


def test_completed_job_duration_comes_from_upstream_times() -> None:
    done = replace(
        make_status(COMPLETE, 100, updated=END - timedelta(hours=1)),
        started=END - timedelta(hours=3),
    )
    failed = replace(make_status(FAILED, 10, image_version_id=9, error="  "), started=None)
    digest = build_digest(
        1, "d", END, [make_event(done), make_event(failed, occurred_at=END - timedelta(hours=2))]
    )
    assert digest is not None
    assert {(i.outcome, i.seconds, i.error) for i in digest.items} == {
        ("completed", 7200, None),
        ("failed", None, None),
    }
