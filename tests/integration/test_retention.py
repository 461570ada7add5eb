"""Retention: finished history goes, work to do stays, and over months the tables level off."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.cli import main
from notifier.core.retention import Pruned, RetentionPolicy
from notifier.core.silences import Matchers, NewSilence
from notifier.store.retention import prune, row_counts
from notifier.store.silences import add_silence
from notifier.store.tables import DELIVERIES, EVENTS, SILENCES, WATCHES
from tests.conftest import T0, add_hand_watches, add_subscription_row
from tests.support import config_files as toml

WATCHES_COUNT = 1000
POLICY = RetentionPolicy(events_days=30, deliveries_days=14)


async def _subscription(engine: AsyncEngine) -> int:
    return await add_subscription_row(engine, "chatops", "https://chat.example.com/")


async def _watch_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(WATCHES.c.id).order_by(WATCHES.c.id))).all())


async def _day_of_events(
    engine: AsyncEngine, watch_ids: list[int], sub: int, day: int, now: datetime
) -> None:
    """Each watch moves once a day; its delivery is sent, except one in a hundred given up and
    one in a thousand still pending (a receiver down for good)."""
    events = []
    deliveries = []
    for watch_id in watch_ids:
        event_id = f"evt_{day}_{watch_id}"
        events.append(
            {
                "id": event_id,
                "watch_id": watch_id,
                "type": "imageversion.state_changed",
                "account_service_id": 1234,
                "image_version_id": watch_id,
                "label": "soak",
                "previous": None,
                "current": {"state_id": 4, "state": "Running", "progress": day},
                "detail": None,
                "occurred_at": now,
            }
        )
        status = (
            "pending" if watch_id % 1000 == 0 else "dead" if watch_id % 100 == 0 else "delivered"
        )
        deliveries.append(
            {
                "event_id": event_id,
                "subscription_id": sub,
                "watch_id": watch_id,
                "status": status,
                "attempts": 1,
                "next_attempt_at": now,
                "created_at": now,
                "delivered_at": now if status == "delivered" else None,
            }
        )
    async with engine.begin() as conn:
        await conn.execute(EVENTS.insert(), events)
        await conn.execute(DELIVERIES.insert(), deliveries)


@pytest.mark.timeout(300)
async def test_soak_1000_watches_for_60_days_the_tables_level_off(engine: AsyncEngine) -> None:
    await add_hand_watches(engine, range(1, WATCHES_COUNT + 1))
    watch_ids = await _watch_ids(engine)
    sub = await _subscription(engine)
    counts: list[dict[str, int]] = []
    for day in range(60):
        now = T0 + timedelta(days=day)  # the hand clock: one step a simulated day
        await _day_of_events(engine, watch_ids, sub, day, now)
        await prune(engine, POLICY, now, batch=500)
        counts.append(await row_counts(engine))
    pending_per_day = WATCHES_COUNT // 1000
    # Past the retention windows the tables hold a fixed window of days, plus the work to do.
    steady = counts[35]
    for day in range(36, 60):
        grown = counts[day]["deliveries"] - steady["deliveries"]
        assert counts[day]["events"] - steady["events"] == (day - 35) * pending_per_day
        assert grown == (day - 35) * pending_per_day
    assert counts[59]["events"] <= 31 * WATCHES_COUNT + 60 * pending_per_day
    assert counts[59]["deliveries"] <= 15 * WATCHES_COUNT + 60 * pending_per_day
    # Without pruning the same 60 days would hold 60,000 of each.
    assert counts[59]["events"] < 60 * WATCHES_COUNT // 1.9


async def test_pending_deliveries_and_their_events_are_kept_whatever_their_age(
    engine: AsyncEngine,
) -> None:
    await add_hand_watches(engine, range(1, 1001))
    sub = await _subscription(engine)
    await _day_of_events(engine, await _watch_ids(engine), sub, 0, T0)
    pruned = await prune(engine, POLICY, T0 + timedelta(days=400), batch=64)
    assert pruned == Pruned(events=999, deliveries=1000 - 1)
    async with engine.connect() as conn:
        left = (await conn.execute(select(DELIVERIES.c.status, DELIVERIES.c.event_id))).all()
        events = (await conn.scalars(select(EVENTS.c.id))).all()
    assert [status for status, _ in left] == ["pending"]
    assert events == [left[0][1]]


async def test_a_dry_run_counts_exactly_what_a_prune_removes(engine: AsyncEngine) -> None:
    await add_hand_watches(engine, range(1, 201))
    sub = await _subscription(engine)
    ids = await _watch_ids(engine)
    for day in range(40):
        await _day_of_events(engine, ids, sub, day, T0 + timedelta(days=day))
    now = T0 + timedelta(days=40)
    before = await row_counts(engine)
    would = await prune(engine, POLICY, now, dry_run=True)
    assert await row_counts(engine) == before
    assert would == await prune(engine, POLICY, now, batch=77)
    assert would.events > 0
    assert would.deliveries > would.events


async def test_silences_that_ended_before_the_kept_events_go_unless_a_kept_row_names_them(
    engine: AsyncEngine,
) -> None:
    await add_hand_watches(engine, [501, 502])
    sub = await _subscription(engine)

    async def silence(ivid: int, ends_at: datetime) -> int:
        made = await add_silence(
            engine,
            NewSilence(
                Matchers(image_version_id=ivid),
                ends_at=ends_at,
                reason="maintenance",
                created_by="ops",
            ),
            source="cli",
            now=ends_at - timedelta(hours=2),
        )
        return made.id

    long_ended = await silence(501, T0)
    named_by_a_pending_event = await silence(502, T0 + timedelta(hours=1))
    await _day_of_events(engine, await _watch_ids(engine), sub, 0, T0)
    async with engine.begin() as conn:  # one event it held, whose delivery is still pending
        held = (await conn.scalars(select(EVENTS.c.id).order_by(EVENTS.c.seq))).first()
        await conn.execute(
            EVENTS.update().where(EVENTS.c.id == held).values(silence_id=named_by_a_pending_event)
        )
        await conn.execute(
            DELIVERIES.update().where(DELIVERIES.c.event_id == held).values(status="pending")
        )
    now = T0 + timedelta(days=POLICY.events_days + 1)
    recently_ended = await silence(501, now - timedelta(days=1))
    still_on = await silence(501, now + timedelta(hours=1))

    would = await prune(engine, POLICY, now, dry_run=True)
    assert would.silences == 1
    assert await prune(engine, POLICY, now) == would
    async with engine.connect() as conn:
        left = set((await conn.scalars(select(SILENCES.c.id))).all())
    assert long_ended not in left
    assert left == {named_by_a_pending_event, recently_ended, still_on}


def test_db_prune_cli_says_what_it_would_remove_and_then_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml.write_config(
        tmp_path / "notifier.toml",
        toml.database("sqlite+aiosqlite:///notifier.db"),
        toml.table("clanforge", access_key="a", secret_key="s"),
        toml.table("retention", events_days=2, deliveries_days=1),
    )
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["db", "prune", "--dry-run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "would remove 0 events older than 2 days and 0 finished deliveries" in out
    assert "and 0 silences that ended that long ago" in out
    assert main(["db", "prune", "--config", str(config)]) == 0
    assert "removed 0 events" in capsys.readouterr().out
