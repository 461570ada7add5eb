"""The outbox: deliveries waiting to be sent, claimed under a lease, marked with the outcome."""

from __future__ import annotations

from collections.abc import Collection, Sequence
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
    """The replica id (host:pid:suffix) sending it right now, if any."""
    lease_until: datetime | None


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
    engine: AsyncEngine,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_subscriptions: Collection[int] = (),
) -> list[ClaimedDelivery]:
    """Lease due deliveries, only the oldest pending one of each (subscription, watch).

    Taking only the head of each key keeps a channel's or receiver's messages about one image
    version in event order: a delivery waiting for its retry holds back the ones behind it, and
    nothing else. ``skip_subscriptions`` are left alone this time (their receiver asked us to
    slow down).
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
    if skip_subscriptions:
        due = due.where(DeliveryRow.subscription_id.not_in(list(skip_subscriptions)))
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


@dataclass(frozen=True, slots=True)
class Delivered:
    delivery_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    delivery_id: int
    error: str
    retry_at: datetime | None
    """None: no further attempt, the delivery is dead."""


Outcome = Delivered | Failed


def _ours(delivery_id: int, owner: str) -> ColumnElement[bool]:
    return and_(DeliveryRow.id == delivery_id, DeliveryRow.lease_owner == owner)


async def record_outcomes(engine: AsyncEngine, owner: str, outcomes: Sequence[Outcome]) -> None:
    """Record the outcome of several attempts in one transaction (one SQLite write lock).

    Only rows this owner still leases change: if our lease ran out and another loop took the
    delivery over, its outcome is the one that counts.
    """
    if not outcomes:
        return
    async with engine.begin() as conn:
        for outcome in outcomes:
            values: dict[str, object] = {
                "attempts": DeliveryRow.attempts + 1,
                "lease_owner": None,
                "lease_until": None,
            }
            if isinstance(outcome, Delivered):
                values.update(status="delivered", delivered_at=outcome.at, last_error=None)
            elif outcome.retry_at is None:
                values.update(status="dead", last_error=outcome.error)
            else:
                values.update(last_error=outcome.error, next_attempt_at=outcome.retry_at)
            await conn.execute(
                update(DeliveryRow).where(_ours(outcome.delivery_id, owner)).values(**values)
            )


async def extend_leases(
    engine: AsyncEngine, owner: str, delivery_ids: Sequence[int], until: datetime
) -> None:
    """Keep the leases of sends still under way (a slow receiver, several Slack calls)."""
    if not delivery_ids:
        return
    async with engine.begin() as conn:
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(list(delivery_ids)), DeliveryRow.lease_owner == owner)
            .values(lease_until=until)
        )


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
            DeliveryRow.lease_until,
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
    """Put dead (or waiting) deliveries back in line to be sent now; returns how many.

    One that a replica is sending right now is left alone: taking its lease away would let a
    second loop send it at the same time.
    """
    stmt = update(DeliveryRow).where(
        DeliveryRow.status != "delivered",
        or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until < now),
    )
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
