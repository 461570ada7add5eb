"""Reading the event history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.events import Event
from notifier.store.codec import event_from_row
from notifier.store.tables import EventRow


async def recent_events(
    engine: AsyncEngine, limit: int = 50, image_version_id: int | None = None
) -> list[Event]:
    stmt = select(EventRow).order_by(EventRow.seq.desc()).limit(limit)
    if image_version_id is not None:
        stmt = stmt.where(EventRow.image_version_id == image_version_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [event_from_row(row) for row in rows]


async def events_page(
    engine: AsyncEngine,
    *,
    limit: int,
    before: int | None = None,
    watch_id: int | None = None,
    image_version_id: int | None = None,
    event_type: str | None = None,
) -> tuple[list[Event], int | None]:
    """Newest first, ``limit`` at a time; returns the events and the cursor for the next page.

    The cursor is the event sequence number: new events arriving between two pages do not shift
    what the next page holds, as an offset would.
    """
    stmt = select(EventRow).order_by(EventRow.seq.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(EventRow.seq < before)
    if watch_id is not None:
        stmt = stmt.where(EventRow.watch_id == watch_id)
    if image_version_id is not None:
        stmt = stmt.where(EventRow.image_version_id == image_version_id)
    if event_type is not None:
        stmt = stmt.where(EventRow.type == event_type)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [event_from_row(row) for row in rows], (rows[-1].seq if more else None)
