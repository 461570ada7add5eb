"""``/api/v1/silences`` over a real socket, on SQLite and PostgreSQL: what a client sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from notifier.core.status import FAILED
from notifier.store.tables import EventRow
from tests.conftest import T0, make_status, seed_watch
from tests.support.api import ApiServer

SILENCE = {"image_version_id": 567890, "for": "2h", "reason": "known flaky builder"}


async def test_added_silence_is_201_listed_shown_and_expired_once(api: ApiServer) -> None:
    status, created = await api.call("POST", "/api/v1/silences", json=SILENCE)
    assert status == 201
    assert created["matches"] == "image version 567890"
    assert created["state"] == "active"
    assert created["created_by"] == "api"
    assert created["source"] == "api"
    assert created["held_events"] == 0
    starts, ends = (api.clock.now, api.clock.now + timedelta(hours=2))
    assert created["starts_at"].startswith(starts.strftime("%Y-%m-%dT%H:%M"))
    assert created["ends_at"].startswith(ends.strftime("%Y-%m-%dT%H:%M"))

    status, listing = await api.call("GET", "/api/v1/silences")
    assert (status, [s["id"] for s in listing["items"]]) == (200, [created["id"]])
    status, shown = await api.call("GET", f"/api/v1/silences/{created['id']}")
    assert (status, shown["reason"]) == (200, "known flaky builder")

    status, expired = await api.call("POST", f"/api/v1/silences/{created['id']}/expire")
    assert (status, expired["state"], expired["expired_by"]) == (200, "expired", "api")
    status, again = await api.call("POST", f"/api/v1/silences/{created['id']}/expire")
    assert (status, again["error"]["code"]) == (409, "ended")

    status, listing = await api.call("GET", "/api/v1/silences")
    assert listing["items"] == []
    status, everything = await api.call("GET", "/api/v1/silences?all=true")
    assert [s["state"] for s in everything["items"]] == ["expired"]


async def test_until_sets_the_end(api: ApiServer) -> None:
    until = (api.clock.now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, created = await api.call(
        "POST", "/api/v1/silences", json={"label_glob": "EU fleet*", "until": until}
    )
    assert status == 201
    assert created["ends_at"].startswith(until.removesuffix("Z"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"for": "2h"}, "a silence needs a matcher"),
        ({"image_version_id": 1, "for": "2 hours"}, "duration '2 hours' is not a whole number"),
        ({"image_version_id": 1, "for": "31d"}, "longer than the most a silence may last, 30d"),
        ({"image_version_id": 1}, "give how long (for, e.g. 2h) or until when"),
        ({"image_version_id": 1, "for": "1h", "until": "2030-01-01T00:00:00Z"}, "not both"),
        ({"image_version_id": 1, "until": "tomorrow"}, "is not an RFC 3339 time"),
        ({"image_version_id": 1, "until": "2030-01-01T00:00:00"}, "needs a time zone"),
        ({"image_version_id": 1, "for": "1h", "reason": "a\nb"}, "reason must be one line"),
        ({"image_version_id": 0, "for": "1h"}, "image_version_id"),
        ({"image_version_id": 1, "for": "1h", "matchers": []}, "unknown field"),
    ],
)
async def test_a_bad_silence_is_422_with_one_line_naming_the_problem(
    api: ApiServer, body: dict[str, object], message: str
) -> None:
    status, answer = await api.call("POST", "/api/v1/silences", json=body)
    assert status == 422
    assert message in answer["error"]["message"]
    assert "\n" not in answer["error"]["message"]
    _, listing = await api.call("GET", "/api/v1/silences?all=true")
    assert listing["items"] == []


async def test_an_unknown_silence_is_404(api: ApiServer) -> None:
    status, body = await api.call("POST", "/api/v1/silences/99/expire")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, _ = await api.call("GET", "/api/v1/silences/99")
    assert status == 404


async def test_status_page_shows_each_active_silence_and_what_it_held_back(
    api: ApiServer,
) -> None:
    watch_id = await seed_watch(api.engine, [(T0, make_status(FAILED, 80, error="locked"))])
    _, created = await api.call(
        "POST",
        "/api/v1/silences",
        json={**SILENCE, "reason": "<b>known</b> flaky builder", "created_by": "ana"},
    )
    async with api.engine.begin() as conn:
        await conn.execute(
            update(EventRow).where(EventRow.watch_id == watch_id).values(silence_id=created["id"])
        )

    status, html = await api.call("GET", "/")

    assert status == 200
    assert "Silences (1 active)" in html
    row = html[html.index(f'data-silence-id="{created["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "image version 567890" in row
    assert "&lt;b&gt;known&lt;/b&gt; flaky builder" in row
    assert "1 event<br>imageversion.state_changed · EU fleet, build 1.4.2" in row
    assert ">ana<" in row  # the admin token is sent: who silenced it is shown
    _, events = await api.call("GET", "/api/v1/events")
    assert [e["silence_id"] for e in events["items"]] == [created["id"]]
