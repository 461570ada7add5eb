"""Daily digests in the outbox: the events a digest is built from, and its one outbox row.

Every replica's cron trigger fires at the digest's time, and a replica starting soon after it
fires it again (:data:`notifier.core.digest.CATCH_UP`). Each tries to insert the same outbox row,
keyed by the digest's id (one per subscription and day, unique): the first insert wins and every
other is a no-op, so the digest is sent once, by the outbox, with its retries. What the digest
lists is the core's (:func:`notifier.core.digest.build_digest`), asked by the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.digest import DailyDigest
from notifier.core.events import Event
from notifier.core.subscriptions import Subscription
from notifier.store.codec import digest_to_json, event_from_row
from notifier.store.engine import conflict_insert
from notifier.store.tables import DELIVERIES, EventRow


@dataclass(frozen=True, slots=True)
class DigestEvents:
    """What a digest of the window ``[start, end)`` is built from."""

    in_window: list[Event]
    """The events of the window, in the order they happened."""
    before: list[Event]
    """Each job's last event before the window."""


async def digest_enqueued(engine: AsyncEngine, digest_id: str) -> bool:
    """Whether the outbox holds the digest ``digest_id`` already (sent or not)."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(DELIVERIES.c.id).where(DELIVERIES.c.digest_id == digest_id)
        )
    return found is not None


async def digest_events(
    engine: AsyncEngine, subscription: Subscription, start: datetime, end: datetime
) -> DigestEvents:
    """The events of ``[start, end)`` and each job's last one before ``start``, narrowed to the
    subscription's account services and image versions (its other filters are the caller's)."""
    stmt = (
        select(EventRow)
        .where(EventRow.occurred_at >= start, EventRow.occurred_at < end)
        .order_by(EventRow.seq)
    )
    # Each job's last event before the window: one still running there a day later has
    # nothing in the window, yet belongs in the digest (the core keeps only the unfinished).
    latest = (
        select(func.max(EventRow.seq))
        .where(EventRow.occurred_at < start)
        .group_by(EventRow.watch_id)
    )
    before = select(EventRow).where(EventRow.seq.in_(latest)).order_by(EventRow.seq)
    if subscription.account_service_ids:
        stmt = stmt.where(EventRow.account_service_id.in_(subscription.account_service_ids))
        before = before.where(EventRow.account_service_id.in_(subscription.account_service_ids))
    if subscription.image_version_ids:
        stmt = stmt.where(EventRow.image_version_id.in_(subscription.image_version_ids))
        before = before.where(EventRow.image_version_id.in_(subscription.image_version_ids))
    async with engine.connect() as conn:
        in_window = [event_from_row(row) for row in (await conn.execute(stmt)).all()]
        earlier = [event_from_row(row) for row in (await conn.execute(before)).all()]
    return DigestEvents(in_window, earlier)


async def enqueue_digest(engine: AsyncEngine, digest: DailyDigest, now: datetime) -> bool:
    """Put ``digest`` in the outbox, to be sent from ``now``; False when it was there already
    (another replica, an earlier start)."""
    insert = (
        conflict_insert(engine, DELIVERIES)
        .values(
            subscription_id=digest.subscription_id,
            kind="digest",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            digest_id=digest.id,
            body=digest_to_json(digest),
        )
        .on_conflict_do_nothing(index_elements=["digest_id"])
    )
    async with engine.begin() as conn:
        result = await conn.execute(insert)
    return bool(result.rowcount == 1)
