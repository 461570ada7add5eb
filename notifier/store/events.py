"""Reading the event history."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.events.model import Event
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
