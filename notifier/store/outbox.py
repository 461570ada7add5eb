"""The outbox: deliveries waiting to be sent, claimed under a lease, marked with the outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from notifier.events.model import LIVE_REFRESH, Event
from notifier.store.codec import event_from_row, status_from_row
from notifier.store.engine import is_postgres
from notifier.store.tables import (
    EVENTS,
    JOB_STATUS,
    DeliveryRow,
    EventRow,
    JobStatusRow,
    SubscriptionRow,
    Watch,
)

DeliveryStatus = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    subscription_id: int
    attempts: int
    created_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    subscription: str
    event_id: str
    event_type: str
    image_version_id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    lease_owner: str | None


def _event_columns() -> list[object]:
    return [c for c in EVENTS.c if c.name not in ("seq", "watch_id")]


def _refresh_columns() -> list[object]:
    """What a live-message refresh (no event) is rendered from: its watch and newest status."""
    return [
        Watch.account_service_id.label("w_account_service_id"),
        Watch.image_version_id.label("w_image_version_id"),
        Watch.label.label("w_label"),
        *(c for c in JOB_STATUS.c if c.name != "watch_id"),
    ]


def _claimed_event(row: Any) -> Event:
    """The event of a delivery, or for a refresh a stand-in of type ``LIVE_REFRESH``."""
    if row.delivery_kind != "refresh":
        return event_from_row(row)
    return Event(
        id=f"refresh-{row.delivery_id}",
        type=LIVE_REFRESH,
        occurred_at=row.delivery_created_at,
        account_service_id=row.w_account_service_id,
        image_version_id=row.w_image_version_id,
        label=row.w_label,
        previous=None,
        current=status_from_row(row.w_image_version_id, row),
    )


async def claim_due_deliveries(
    engine: AsyncEngine, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedDelivery]:
    """Lease due deliveries, only the oldest pending one of each (subscription, watch).

    Taking only the head of each key keeps a channel's or receiver's messages about one image
    version in event order: a delivery waiting for its retry holds back the ones behind it, and
    nothing else.
    """
    until = now + lease
    earlier = aliased(DeliveryRow)
    head_of_key = ~exists().where(
        earlier.subscription_id == DeliveryRow.subscription_id,
        earlier.watch_id == DeliveryRow.watch_id,
        earlier.status == "pending",
        earlier.id < DeliveryRow.id,
    )
    due = (
        select(DeliveryRow.id)
        .where(
            DeliveryRow.status == "pending",
            DeliveryRow.next_attempt_at <= now,
            or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until < now),
            head_of_key,
        )
        .order_by(DeliveryRow.id)
        .limit(limit)
    )
    if is_postgres(engine):
        due = due.with_for_update(skip_locked=True)
    async with engine.begin() as conn:
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(due.scalar_subquery()))
            # A claimed refresh frees its slot: a change seen during its send queues another.
            .values(lease_owner=owner, lease_until=until, refresh_slot=None)
            .execution_options(synchronize_session=False)
        )
        rows = (
            await conn.execute(
                select(
                    DeliveryRow.id.label("delivery_id"),
                    DeliveryRow.subscription_id,
                    DeliveryRow.attempts,
                    DeliveryRow.created_at.label("delivery_created_at"),
                    DeliveryRow.kind.label("delivery_kind"),
                    *_event_columns(),
                    *_refresh_columns(),
                )
                .outerjoin(EventRow, EventRow.id == DeliveryRow.event_id)
                .join(Watch, Watch.id == DeliveryRow.watch_id)
                .outerjoin(JobStatusRow, JobStatusRow.watch_id == DeliveryRow.watch_id)
                .where(DeliveryRow.lease_owner == owner, DeliveryRow.lease_until == until)
                .order_by(DeliveryRow.id)
            )
        ).all()
    return [
        ClaimedDelivery(
            id=row.delivery_id,
            subscription_id=row.subscription_id,
            attempts=row.attempts,
            created_at=row.delivery_created_at,
            event=_claimed_event(row),
        )
        for row in rows
    ]


def _ours(delivery_id: int, owner: str) -> ColumnElement[bool]:
    return and_(DeliveryRow.id == delivery_id, DeliveryRow.lease_owner == owner)


# Ids per UPDATE ... WHERE id IN (...): well under SQLite's and asyncpg's bind parameter limits.
_IDS_PER_STATEMENT = 500


async def mark_delivered(engine: AsyncEngine, delivery_id: int, owner: str, now: datetime) -> None:
    await mark_delivered_many(engine, [delivery_id], owner, now)


async def mark_delivered_many(
    engine: AsyncEngine, delivery_ids: Sequence[int], owner: str, now: datetime
) -> None:
    """Record successful sends in one transaction, a statement per 500 ids.

    A transaction per send cost more than the send itself. A crash between the sends and this
    commit sends those deliveries again once their lease runs out: at least once, and the
    webhook-id lets receivers drop the repeat.
    """
    if not delivery_ids:
        return
    async with engine.begin() as conn:
        for start in range(0, len(delivery_ids), _IDS_PER_STATEMENT):
            chunk = list(delivery_ids[start : start + _IDS_PER_STATEMENT])
            await conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(chunk), DeliveryRow.lease_owner == owner)
                .values(
                    status="delivered",
                    attempts=DeliveryRow.attempts + 1,
                    delivered_at=now,
                    last_error=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )


async def mark_failed(
    engine: AsyncEngine,
    delivery_id: int,
    owner: str,
    error: str,
    next_attempt_at: datetime | None,
) -> None:
    """Record a failed attempt; ``next_attempt_at`` None means give up (dead)."""
    values: dict[str, object] = {
        "attempts": DeliveryRow.attempts + 1,
        "last_error": error,
        "lease_owner": None,
        "lease_until": None,
    }
    if next_attempt_at is None:
        values["status"] = "dead"
    else:
        values["next_attempt_at"] = next_attempt_at
    async with engine.begin() as conn:
        await conn.execute(update(DeliveryRow).where(_ours(delivery_id, owner)).values(**values))


async def release_leases(engine: AsyncEngine, owner: str) -> None:
    """Give back what this process claimed but did not send, so others need not wait it out."""
    async with engine.begin() as conn:
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


async def list_deliveries(
    engine: AsyncEngine, status: DeliveryStatus | None = None, limit: int = 100
) -> list[DeliveryView]:
    stmt = (
        select(
            DeliveryRow.id,
            SubscriptionRow.name.label("subscription"),
            EventRow.id.label("event_id"),
            EventRow.type.label("event_type"),
            EventRow.image_version_id,
            DeliveryRow.status,
            DeliveryRow.attempts,
            DeliveryRow.next_attempt_at,
            DeliveryRow.last_error,
            DeliveryRow.created_at,
            DeliveryRow.delivered_at,
            DeliveryRow.lease_owner,
        )
        .join(EventRow, EventRow.id == DeliveryRow.event_id)
        .join(SubscriptionRow, SubscriptionRow.id == DeliveryRow.subscription_id)
        .order_by(DeliveryRow.id.desc())
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(DeliveryRow.status == status)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [DeliveryView(**row._asdict()) for row in rows]


async def retry_deliveries(
    engine: AsyncEngine, now: datetime, ids: Sequence[int] = (), all_dead: bool = False
) -> int:
    """Put dead (or pending) deliveries back in line to be sent now; returns how many."""
    stmt = update(DeliveryRow).where(DeliveryRow.status != "delivered")
    if all_dead:
        stmt = stmt.where(DeliveryRow.status == "dead")
    else:
        stmt = stmt.where(DeliveryRow.id.in_(list(ids)))
    async with engine.begin() as conn:
        result = await conn.execute(
            stmt.values(status="pending", next_attempt_at=now, lease_owner=None, lease_until=None)
        )
    return result.rowcount


async def outbox_depth(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
        )
    return int(count or 0)
