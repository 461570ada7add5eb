"""The outbox in SQL (:class:`SqlOutbox`, see :mod:`notifier.store.outbox_store` for what it
promises) and the operators' queries over it (list, retry, depth)."""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Integer,
    Update,
    and_,
    bindparam,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.digest import DailyDigest
from notifier.core.events import DIGEST_DAILY, Event
from notifier.core.lease import Lease
from notifier.core.live_refresh import WatchNow
from notifier.store.codec import digest_from_json, event_from_row, status_from_row
from notifier.store.engine import is_postgres
from notifier.store.outbox_store import ClaimedDelivery, Delivered, Outcome, Released
from notifier.store.outbox_store import DeliveryStatus as DeliveryStatus
from notifier.store.subscriptions import disable_subscription
from notifier.store.tables import (
    DELIVERIES,
    EVENTS,
    JOB_STATUS,
    WATCHES,
    DeliveryRow,
    EventRow,
    SubscriptionRow,
)


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


class SqlOutbox:
    """The outbox's one SQL implementation; every difference between SQLite and PostgreSQL is in
    the choice of the claim's lease statement (:func:`_lease_statement`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._claim = _Claim(is_postgres(engine))

    async def claim_due(
        self, lease: Lease, limit: int, skip_subscriptions: Collection[int] = ()
    ) -> list[ClaimedDelivery]:
        claim = self._claim
        async with self._engine.begin() as conn:
            leased = (
                await conn.execute(
                    claim.lease,
                    {
                        "b_now": lease.start,
                        "b_skip": list(skip_subscriptions),
                        "b_limit": limit,
                        "b_owner": lease.owner,
                        "b_until": lease.until,
                    },
                )
            ).all()
            if not leased:
                return []
            # Positional from here on: (id, subscription_id, attempts, created_at, kind,
            # event_id, watch_id) as RETURNING lists them.
            claimed = sorted(leased, key=_first)
            event_ids = [row[5] for row in claimed if row[4] not in ("refresh", "digest")]
            refreshes = [row for row in claimed if row[4] == "refresh"]
            digest_ids = [row[0] for row in claimed if row[4] == "digest"]
            events: dict[str, Event] = {}
            if event_ids:
                rows = await conn.execute(claim.events, {"b_ids": event_ids})
                events = {row.id: event_from_row(row) for row in rows}
            watches: dict[int, WatchNow] = {}
            if refreshes:
                await conn.execute(_FREE_REFRESH_SLOTS, {"b_ids": [row[0] for row in refreshes]})
                rows = await conn.execute(claim.watches, {"b_ids": [row[6] for row in refreshes]})
                watches = {row.w_id: _watch_now(row) for row in rows}
            digests: dict[int, DailyDigest] = {}
            if digest_ids:
                rows = await conn.execute(_DIGEST_BODIES, {"b_ids": digest_ids})
                digests = {row.id: digest_from_json(row.body) for row in rows}
        return [
            ClaimedDelivery(
                delivery_id,
                subscription_id,
                attempts,
                created_at,
                watches[watch_id]
                if kind == "refresh"
                else digests[delivery_id]
                if kind == "digest"
                else events[event_id],
                kind,
            )
            for delivery_id, subscription_id, attempts, created_at, kind, event_id, watch_id in (
                claimed
            )
        ]

    async def record_outcomes(self, owner: str, outcomes: Sequence[Outcome]) -> None:
        """One statement per kind of outcome, each an executemany over its deliveries."""
        delivered: list[dict[str, object]] = []
        dead: list[dict[str, object]] = []
        retry: list[dict[str, object]] = []
        released: list[dict[str, object]] = []
        for outcome in outcomes:
            ours: dict[str, object] = {"b_id": outcome.delivery_id, "b_owner": owner}
            if isinstance(outcome, Delivered):
                delivered.append({**ours, "b_at": outcome.at})
            elif isinstance(outcome, Released):
                released.append(ours)
            elif outcome.retry_at is None:
                dead.append({**ours, "b_error": outcome.error})
            else:
                retry.append({**ours, "b_error": outcome.error, "b_at": outcome.retry_at})
        if not outcomes:
            return
        async with self._engine.begin() as conn:
            for statement, rows in (
                (_MARK_DELIVERED, delivered),
                (_MARK_DEAD, dead),
                (_MARK_RETRY, retry),
                (_MARK_RELEASED, released),
            ):
                if rows:
                    await conn.execute(statement, rows)

    async def extend_leases(self, owner: str, delivery_ids: Sequence[int], until: datetime) -> None:
        if not delivery_ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(list(delivery_ids)), DeliveryRow.lease_owner == owner)
                .values(lease_until=until)
            )

    async def release_leases(self, owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def disable_subscription(self, subscription_id: int, reason: str) -> None:
        await disable_subscription(self._engine, subscription_id, reason)


class _Claim:
    """A claim's statements, built once per backend: compiled once, then only their parameters
    change.

    The lease UPDATE returns the deliveries' own columns; the events are read by id in a second
    statement, and only when a refresh is among them its watch and newest status in a third:
    joining the status's twenty columns onto every event delivery cost more than reading them.
    """

    def __init__(self, postgres: bool) -> None:
        self.lease = _lease_statement(postgres)
        # The watch's owners as they are now: who to mention is read when sending, so an owner
        # set after the event still hears of its failure.
        self.events = (
            select(
                *(c for c in EVENTS.c if c.name not in ("seq", "watch_id")),
                WATCHES.c.owners,
            )
            .select_from(EVENTS.outerjoin(WATCHES, WATCHES.c.id == EVENTS.c.watch_id))
            .where(EVENTS.c.id.in_(bindparam("b_ids", expanding=True)))
        )
        self.watches = (
            select(
                WATCHES.c.id.label("w_id"),
                WATCHES.c.account_service_id.label("w_account_service_id"),
                WATCHES.c.image_version_id.label("w_image_version_id"),
                WATCHES.c.label.label("w_label"),
                *(c for c in JOB_STATUS.c if c.name != "watch_id"),
            )
            .select_from(WATCHES.outerjoin(JOB_STATUS, JOB_STATUS.c.watch_id == WATCHES.c.id))
            .where(WATCHES.c.id.in_(bindparam("b_ids", expanding=True)))
        )


def _watch_now(row: Any) -> WatchNow:
    return WatchNow(
        account_service_id=row.w_account_service_id,
        image_version_id=row.w_image_version_id,
        label=row.w_label,
        status=status_from_row(row.w_image_version_id, row),
    )


def _lease_statement(postgres: bool) -> Update:
    """The claim's lease, the one statement whose shape differs by backend. It leaves
    ``refresh_slot`` alone (see :data:`_FREE_REFRESH_SLOTS`)."""
    return _postgres_lease() if postgres else _sqlite_lease()


def _due() -> ColumnElement[bool]:
    """Due now and leased by no one (or the lease ran out), its receiver not slowing us down."""
    d = DELIVERIES.c
    now = bindparam("b_now", type_=d.next_attempt_at.type)
    return and_(
        d.next_attempt_at <= now,
        or_(d.lease_until.is_(None), d.lease_until < now),
        d.subscription_id.not_in(bindparam("b_skip", expanding=True)),
    )


def _lease_returning(where: ColumnElement[bool]) -> Update:
    d = DELIVERIES.c
    return (
        update(DELIVERIES)
        .where(where)
        .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
        .returning(
            d.id, d.subscription_id, d.attempts, d.created_at, d.kind, d.event_id, d.watch_id
        )
    )


def _sqlite_lease() -> Update:
    """The due heads of their keys, oldest first: a pending delivery with no earlier pending
    one of its (subscription, watch). SQLite probes ``ix_deliveries_key`` for each candidate
    and walks the pending ones in id order (its status index ends with the rowid)."""
    d = DELIVERIES.c
    earlier = DELIVERIES.alias("earlier")
    head_of_key = ~exists().where(
        earlier.c.subscription_id == d.subscription_id,
        earlier.c.watch_id == d.watch_id,
        earlier.c.status == "pending",
        earlier.c.id < d.id,
    )
    due = (
        select(d.id)
        .where(d.status == "pending", _due(), head_of_key)
        .order_by(d.id)
        .limit(bindparam("b_limit", type_=Integer))
    )
    return _lease_returning(d.id.in_(due.scalar_subquery()))


def _postgres_lease() -> Update:
    """The same claim for PostgreSQL, linear in the pending deliveries whatever its statistics say.

    SQLite's shape let a stale ANALYZE (a burst of pending rows after a quiet spell) pick a plan
    that read every pending delivery per candidate. Here the keys' heads come from one pass over
    the pending deliveries and the due ones are locked through the primary key; "still pending"
    is spelled so that no index serves it, or the planner matches each pending row against the
    heads again (docs/performance-history.md, tenth round)."""
    d = DELIVERIES.c
    h = DELIVERIES.alias("h")
    heads = (
        select(func.min(h.c.id))
        .where(h.c.status == "pending")
        .group_by(h.c.subscription_id, h.c.watch_id)
    )
    picked = (
        select(d.id)
        .where(
            d.id == func.any(func.array(heads.scalar_subquery())),
            _due(),
            d.status.is_not_distinct_from("pending"),
        )
        .order_by(d.id)
        .limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    return _lease_returning(d.id == func.any(func.array(select(picked.c.id).scalar_subquery())))


# A claimed refresh frees its slot: a change seen during its send queues another. A statement of
# its own, for refreshes only: ``refresh_slot`` is in a unique index, and naming it in the lease's
# SET would rewrite that index for every claimed event delivery too.
_FREE_REFRESH_SLOTS = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(refresh_slot=null())
)


_DIGEST_BODIES = select(DELIVERIES.c.id, DELIVERIES.c.body).where(
    DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True))
)

_first: Final = operator.itemgetter(0)

_D = DELIVERIES.c
# Only rows this owner still leases change (see SqlOutbox.record_outcomes).
_OURS = and_(_D.id == bindparam("b_id"), _D.lease_owner == bindparam("b_owner"))
_SENT = {"attempts": _D.attempts + 1, "lease_owner": null(), "lease_until": null()}
_MARK_DELIVERED = (
    update(DELIVERIES)
    .where(_OURS)
    .values(**_SENT, status="delivered", delivered_at=bindparam("b_at"), last_error=null())
)
_MARK_DEAD = (
    update(DELIVERIES).where(_OURS).values(**_SENT, status="dead", last_error=bindparam("b_error"))
)
_MARK_RETRY = (
    update(DELIVERIES)
    .where(_OURS)
    .values(**_SENT, last_error=bindparam("b_error"), next_attempt_at=bindparam("b_at"))
)
_MARK_RELEASED = update(DELIVERIES).where(_OURS).values(lease_owner=null(), lease_until=null())


async def list_deliveries(
    engine: AsyncEngine, status: DeliveryStatus | None = None, limit: int = 100
) -> list[DeliveryView]:
    stmt = (
        select(
            DeliveryRow.id,
            SubscriptionRow.name.label("subscription"),
            func.coalesce(EventRow.id, DeliveryRow.digest_id).label("event_id"),
            func.coalesce(EventRow.type, literal(DIGEST_DAILY)).label("event_type"),
            func.coalesce(EventRow.image_version_id, 0).label("image_version_id"),
            DeliveryRow.status,
            DeliveryRow.attempts,
            DeliveryRow.next_attempt_at,
            DeliveryRow.last_error,
            DeliveryRow.created_at,
            DeliveryRow.delivered_at,
            DeliveryRow.lease_owner,
            DeliveryRow.lease_until,
        )
        .outerjoin(EventRow, EventRow.id == DeliveryRow.event_id)
        .join(SubscriptionRow, SubscriptionRow.id == DeliveryRow.subscription_id)
        .where(or_(DeliveryRow.event_id.is_not(None), DeliveryRow.digest_id.is_not(None)))
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


# Row ids are 32-bit integers on PostgreSQL: a larger one names no row, and asking for it there
# would be an error rather than "not found".
_MAX_ROW_ID = 2**31 - 1


async def delivery_states(
    engine: AsyncEngine, ids: Collection[int], now: datetime
) -> dict[int, str]:
    """Each existing delivery among ``ids`` by its status, "leased" for one being sent now, so
    ``deliveries retry`` can name the ids it did not put back in line, and why."""
    wanted = [i for i in ids if i <= _MAX_ROW_ID]
    if not wanted:
        return {}
    stmt = select(DeliveryRow.id, DeliveryRow.status, DeliveryRow.lease_until).where(
        DeliveryRow.id.in_(wanted)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {
        row.id: "leased"
        if row.status != "delivered" and row.lease_until is not None and row.lease_until >= now
        else row.status
        for row in rows
    }
