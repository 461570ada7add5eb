"""Pruning old history in small batches, so the database stops growing with time.

Each batch is its own short transaction (at most ``batch`` rows of one table), so a prune never
holds SQLite's single write lock for long and the poller and dispatcher keep their turns.
Finished deliveries go first, then the old events none of whose deliveries is pending, with
whatever finished deliveries they still have, then the silences that ended as long ago as those
events and that no kept event or delivery still names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from notifier.core.retention import FINISHED_DELIVERY_STATUSES, Pruned, RetentionPolicy
from notifier.store.tables import DeliveryRow, EventRow, SilenceRow

DEFAULT_BATCH = 500


def _old_deliveries(before: datetime) -> ColumnElement[bool]:
    return and_(
        DeliveryRow.status.in_(FINISHED_DELIVERY_STATUSES),
        DeliveryRow.created_at < before,
    )


def _old_events(before: datetime) -> ColumnElement[bool]:
    # A held delivery is sent (as its live message's resume) when its silence ends: kept too.
    pending = exists().where(
        DeliveryRow.event_id == EventRow.id, DeliveryRow.status.in_(("pending", "held"))
    )
    return and_(EventRow.occurred_at < before, ~pending)


def _old_silences(deliveries_before: datetime, events_before: datetime) -> ColumnElement[bool]:
    """Ended before ``events_before`` and named by no event or delivery the prune keeps: the
    ``silence_id`` columns have no foreign key, so this keeps them from pointing at nothing (a
    held delivery is kept, so is its silence, whose end releases it)."""
    old_events = select(EventRow.id).where(_old_events(events_before))
    kept_event = exists().where(EventRow.silence_id == SilenceRow.id, ~_old_events(events_before))
    # Aliased so that the old-events subquery's own deliveries are not correlated to this one.
    delivery = aliased(DeliveryRow)
    kept_delivery = exists().where(
        delivery.silence_id == SilenceRow.id,
        ~and_(
            delivery.status.in_(FINISHED_DELIVERY_STATUSES),
            delivery.created_at < deliveries_before,
        ),
        delivery.event_id.is_(None) | ~delivery.event_id.in_(old_events),
    )
    return and_(SilenceRow.ends_at < events_before, ~kept_event, ~kept_delivery)


async def prune(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    now: datetime,
    *,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
) -> Pruned:
    """Remove (or with ``dry_run`` count) what ``policy`` no longer keeps at ``now``."""
    deliveries_before = policy.deliveries_before(now)
    events_before = policy.events_before(now)
    if dry_run:
        return await _count(engine, deliveries_before, events_before)
    deliveries = await _in_batches(
        engine,
        select(DeliveryRow.id).where(_old_deliveries(deliveries_before)),
        _remove_deliveries,
        batch,
    )
    events = await _in_batches(
        engine, select(EventRow.id).where(_old_events(events_before)), _remove_events, batch
    )
    silences = await _in_batches(
        engine,
        select(SilenceRow.id).where(_old_silences(deliveries_before, events_before)),
        _remove_silences,
        batch,
    )
    return deliveries + events + silences


async def _in_batches(
    engine: AsyncEngine,
    old_ids: Select[Any],
    remove: Callable[[AsyncConnection, Sequence[Any]], Awaitable[Pruned]],
    batch: int,
) -> Pruned:
    """Remove what ``old_ids`` selects, ``batch`` ids a transaction, until none is left."""
    total = Pruned()
    while True:
        async with engine.begin() as conn:
            ids = (await conn.scalars(old_ids.limit(batch))).all()
            if ids:
                total += await remove(conn, ids)
        if len(ids) < batch:
            return total
        await asyncio.sleep(0)  # let the poller and dispatcher in between batches


async def _remove_deliveries(conn: AsyncConnection, ids: Sequence[int]) -> Pruned:
    await conn.execute(delete(DeliveryRow).where(DeliveryRow.id.in_(ids)))
    return Pruned(deliveries=len(ids))


async def _remove_events(conn: AsyncConnection, ids: Sequence[str]) -> Pruned:
    """The events, and whatever finished deliveries they still have."""
    result = await conn.execute(delete(DeliveryRow).where(DeliveryRow.event_id.in_(ids)))
    await conn.execute(delete(EventRow).where(EventRow.id.in_(ids)))
    return Pruned(events=len(ids), deliveries=result.rowcount or 0)


async def _remove_silences(conn: AsyncConnection, ids: Sequence[int]) -> Pruned:
    await conn.execute(delete(SilenceRow).where(SilenceRow.id.in_(ids)))
    return Pruned(silences=len(ids))


async def _count(
    engine: AsyncEngine, deliveries_before: datetime, events_before: datetime
) -> Pruned:
    async with engine.connect() as conn:
        deliveries = await conn.scalar(
            select(func.count()).select_from(DeliveryRow).where(_old_deliveries(deliveries_before))
        )
        old_events = select(EventRow.id).where(_old_events(events_before))
        events = await conn.scalar(select(func.count()).select_from(old_events.subquery()))
        # The finished deliveries of those events that are not old enough on their own.
        with_events = await conn.scalar(
            select(func.count())
            .select_from(DeliveryRow)
            .where(
                DeliveryRow.event_id.in_(old_events),
                ~_old_deliveries(deliveries_before),
            )
        )
        silences = await conn.scalar(
            select(func.count())
            .select_from(SilenceRow)
            .where(_old_silences(deliveries_before, events_before))
        )
    return Pruned(
        events=int(events or 0),
        deliveries=int(deliveries or 0) + int(with_events or 0),
        silences=int(silences or 0),
    )


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows in the tables that grow with time."""
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(EventRow))
        deliveries = await conn.scalar(select(func.count()).select_from(DeliveryRow))
    return {"events": int(events or 0), "deliveries": int(deliveries or 0)}
