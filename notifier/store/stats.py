"""Whole-database figures for ``/metrics``: what every replica sees alike."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.events import STATE_CHANGED
from notifier.store.tables import DeliveryRow, EventRow, Watch


@dataclass(frozen=True, slots=True)
class DatabaseFigures:
    pending_deliveries: int
    active_watches: int
    transitions_by_state: dict[str, int]
    """``state_changed`` events by the state they changed to, over the events kept."""


async def database_figures(engine: AsyncEngine) -> DatabaseFigures:
    """The outbox depth, the active watches and the transitions by target state, read together."""
    state = EventRow.current["state"].as_string()
    async with engine.connect() as conn:
        depth = await conn.scalar(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
        )
        active = await conn.scalar(
            select(func.count()).select_from(Watch).where(Watch.active.is_(True))
        )
        rows = (
            await conn.execute(
                select(state, func.count()).where(EventRow.type == STATE_CHANGED).group_by(state)
            )
        ).all()
    return DatabaseFigures(
        pending_deliveries=int(depth or 0),
        active_watches=int(active or 0),
        transitions_by_state={str(name): int(count) for name, count in rows},
    )
