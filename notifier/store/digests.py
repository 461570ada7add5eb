"""Enqueuing a subscription's daily digest: rendered from the events table, claimed once.

Every replica's cron trigger fires at the digest's time, and a replica starting soon after it
fires it again (:data:`notifier.core.digest.CATCH_UP`). Each tries to insert the same outbox row,
keyed by the digest's id (one per subscription and day, unique): the first insert wins and every
other is a no-op, so the digest is sent once, by the outbox, with its retries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.digest import WINDOW, DailyDigest, build_digest, digest_day, digest_id
from notifier.core.subscriptions import Subscription, follows
from notifier.store.codec import digest_to_json, event_from_row
from notifier.store.engine import conflict_insert
from notifier.store.tables import DELIVERIES, EventRow


async def enqueue_digest(
    engine: AsyncEngine, subscription: Subscription, fire: datetime, now: datetime
) -> DailyDigest | None:
    """Put the digest due at ``fire`` in the outbox; the digest when this call enqueued it, None
    when it was already there (another replica, an earlier start) or nothing happened."""
    schedule = subscription.digest
    assert schedule is not None, "only subscriptions with a digest have one to send"
    ident = digest_id(subscription.id, digest_day(schedule, fire))
    async with engine.begin() as conn:
        taken = await conn.scalar(select(DELIVERIES.c.id).where(DELIVERIES.c.digest_id == ident))
        if taken is not None:
            return None
        stmt = (
            select(EventRow)
            .where(EventRow.occurred_at >= fire - WINDOW, EventRow.occurred_at < fire)
            .order_by(EventRow.seq)
        )
        # Each job's last event before the window: one still running there a day later has
        # nothing in the window, yet belongs in the digest (the core keeps only the unfinished).
        latest = (
            select(func.max(EventRow.seq))
            .where(EventRow.occurred_at < fire - WINDOW)
            .group_by(EventRow.watch_id)
        )
        before = select(EventRow).where(EventRow.seq.in_(latest)).order_by(EventRow.seq)
        if subscription.account_service_ids:
            stmt = stmt.where(EventRow.account_service_id.in_(subscription.account_service_ids))
            before = before.where(EventRow.account_service_id.in_(subscription.account_service_ids))
        if subscription.image_version_ids:
            stmt = stmt.where(EventRow.image_version_id.in_(subscription.image_version_ids))
            before = before.where(EventRow.image_version_id.in_(subscription.image_version_ids))
        events = [event_from_row(row) for row in (await conn.execute(stmt)).all()]
        earlier = [event_from_row(row) for row in (await conn.execute(before)).all()]
        digest = build_digest(
            subscription.id,
            digest_day(schedule, fire),
            fire,
            [e for e in events if follows(subscription, e)],
            [e for e in earlier if follows(subscription, e)],
        )
        if digest is None:
            return None
        insert = (
            conflict_insert(conn, DELIVERIES)
            .values(
                subscription_id=subscription.id,
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
        result = await conn.execute(insert)
    return digest if result.rowcount == 1 else None
