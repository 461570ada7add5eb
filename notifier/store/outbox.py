"""The outbox: deliveries waiting to be sent, claimed under a lease, marked with the outcome."""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.core.events import LIVE_REFRESH, Event
from notifier.store.bulk import BulkStatement
from notifier.store.codec import event_from_row, status_from_row
from notifier.store.engine import is_postgres
from notifier.store.id_lists import MomentPairsUpdate
from notifier.store.recent_events import RecentEvents
from notifier.store.tables import (
    DELIVERIES,
    EVENTS,
    JOB_STATUS,
    WATCHES,
    DeliveryRow,
    EventRow,
    SubscriptionRow,
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


def _claim_statements(postgres: bool) -> tuple[Update, Select[Any], Select[Any]]:
    """The claim, built once per backend: compiled once, then only its parameters change.

    The lease UPDATE returns the deliveries' own columns; the events are read by id in a second
    statement, and only when a refresh is among them its watch and newest status in a third:
    joining the status's twenty columns onto every event delivery cost more than reading them.
    The lease leaves ``refresh_slot`` alone (see :data:`_FREE_REFRESH_SLOTS`).
    """
    lease = _postgres_lease() if postgres else _sqlite_lease()
    events = select(*(c for c in EVENTS.c if c.name not in ("seq", "watch_id"))).where(
        EVENTS.c.id.in_(bindparam("b_ids", expanding=True))
    )
    refreshed = (
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
    return lease, events, refreshed


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
    """The same claim for PostgreSQL, in a shape whose cost does not hang on its statistics.

    Written as SQLite's, its plan depended on what the last ANALYZE saw, which was usually no
    pending delivery at all (a quiet outbox; a burst of a few thousand rows in a long history
    does not trigger autoanalyze). Believing in one pending row, the planner checked "no
    earlier pending delivery of the key" by reading every pending delivery for each
    candidate: 350 ms a claim behind 2,000 of them. With fresh statistics it could walk the
    primary key through the whole delivered history instead. Here the heads of the keys are
    found in one pass over the pending deliveries (``ix_deliveries_status``), and the due ones
    among them are locked through the primary key (SKIP LOCKED, oldest first, up to the
    limit): linear in the pending deliveries whatever the statistics say (2.7 ms at 2,000,
    9 ms at 20,000), and nothing else is left for the planner to choose.

    The lock re-checks the row as it is now (another replica may have recorded it meanwhile),
    and spells "still pending" so that no index serves it: given ``status = 'pending'``,
    the planner read the pending deliveries through ``ix_deliveries_status`` and matched each
    against the array of heads, once more the pending deliveries times the limit."""
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


_CLAIM = {False: _claim_statements(False), True: _claim_statements(True)}
# A claimed refresh frees its slot: a change seen during its send queues another. Apart from the
# lease, and only for refreshes: a column named in an UPDATE's SET has its indexes rewritten in
# every row the UPDATE touches, whatever the value, and ``refresh_slot`` is in a unique index;
# setting it in the lease cost every claimed event delivery two more index writes (SQLite, raw:
# 1.03 against 0.41 us a row).
_FREE_REFRESH_SLOTS = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(refresh_slot=null())
)


def _refresh_event(delivery_id: int, created_at: datetime, watch: Any) -> Event:
    """A live-message refresh has no event: a stand-in of type ``LIVE_REFRESH`` showing the
    watch's newest status."""
    return Event(
        id=f"refresh-{delivery_id}",
        type=LIVE_REFRESH,
        occurred_at=created_at,
        account_service_id=watch.w_account_service_id,
        image_version_id=watch.w_image_version_id,
        label=watch.w_label,
        previous=None,
        current=status_from_row(watch.w_image_version_id, watch),
    )


async def claim_due_deliveries(
    engine: AsyncEngine,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_subscriptions: Collection[int] = (),
    recent: RecentEvents | None = None,
) -> list[ClaimedDelivery]:
    """Lease due deliveries, only the oldest pending one of each (subscription, watch).

    Taking only the head of each key keeps a channel's or receiver's messages about one image
    version in event order: a delivery waiting for its retry holds back the ones behind it, and
    nothing else. ``skip_subscriptions`` are left alone this time (their receiver asked us to
    slow down). What was claimed is what the lease update returned: deliveries this owner
    claimed earlier and still holds are not handed out twice. Events found in ``recent`` (just
    committed by this process) are not read back.
    """
    lease_stmt, events_stmt, refreshed_stmt = _CLAIM[is_postgres(engine)]
    async with engine.begin() as conn:
        leased = (
            await conn.execute(
                lease_stmt,
                {
                    "b_now": now,
                    "b_skip": list(skip_subscriptions),
                    "b_limit": limit,
                    "b_owner": owner,
                    "b_until": now + lease,
                },
            )
        ).all()
        if not leased:
            return []
        # Positional from here on: (id, subscription_id, attempts, created_at, kind, event_id,
        # watch_id) as RETURNING lists them; this loop runs once per claimed delivery.
        claimed = sorted(leased, key=_first)
        event_ids = [row[5] for row in claimed if row[4] != "refresh"]
        refreshes = [row for row in claimed if row[4] == "refresh"]
        events: dict[str, Event] = {}
        missing = event_ids
        if recent is not None:
            missing = []
            for event_id in event_ids:
                event = recent.get(event_id)
                if event is None:
                    missing.append(event_id)
                else:
                    events[event_id] = event
        if missing:
            rows = await conn.execute(events_stmt, {"b_ids": missing})
            events.update((row.id, event_from_row(row)) for row in rows)
        watches: dict[int, Any] = {}
        if refreshes:
            await conn.execute(_FREE_REFRESH_SLOTS, {"b_ids": [row[0] for row in refreshes]})
            rows = await conn.execute(refreshed_stmt, {"b_ids": [row[6] for row in refreshes]})
            watches = {row.w_id: row for row in rows}
    return [
        ClaimedDelivery(
            delivery_id,
            subscription_id,
            attempts,
            created_at,
            (
                _refresh_event(delivery_id, created_at, watches[watch_id])
                if kind == "refresh"
                else events[event_id]
            ),
        )
        for delivery_id, subscription_id, attempts, created_at, kind, event_id, watch_id in claimed
    ]


_first: Final = operator.itemgetter(0)


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


@dataclass(frozen=True, slots=True)
class Released:
    """Not attempted (its receiver asked us to slow down meanwhile): back in line, unchanged."""

    delivery_id: int


Outcome = Delivered | Failed | Released

_D = DELIVERIES.c
# Only rows this owner still leases change (see record_outcomes).
_OURS = and_(_D.id == bindparam("b_id"), _D.lease_owner == bindparam("b_owner"))
# NULL in the SQL rather than None in every row: the sqlite3 module runs its adapter lookup (two
# failed attribute lookups, each formatting an AttributeError) for every None it binds.
_SENT = {"attempts": _D.attempts + 1, "lease_owner": null(), "lease_until": null()}


# A batch's successful sends, most of its outcomes, in ONE statement over (id, time) pairs
# (MomentPairsUpdate). As an executemany, beside an event loop busy with sends, each of SQLite's
# steps waited for the loop's next turn to retake the GIL: 125 outcomes held SQLite's write lock
# for 8 to 9 ms, the claims queuing behind them. Dispatch, callgrind: 671,900 -> 660,500
# instructions a delivery.
def _delivered_update(delivery_id: ColumnElement[Any], delivered_at: ColumnElement[Any]) -> Update:
    return (
        update(DELIVERIES)
        .where(_D.id == delivery_id, _D.lease_owner == bindparam("b_owner"))
        .values(**_SENT, status="delivered", delivered_at=delivered_at, last_error=null())
    )


_MARK_DELIVERED = MomentPairsUpdate("b_delivered", _D.delivered_at.type, _delivered_update)
# The rarer outcomes: built once, each executed as one executemany per batch, rows by position.
_MARK_DEAD = BulkStatement(
    update(DELIVERIES).where(_OURS).values(**_SENT, status="dead", last_error=bindparam("b_error")),
    ("b_id", "b_owner", "b_error"),
)
_MARK_RETRY = BulkStatement(
    update(DELIVERIES)
    .where(_OURS)
    .values(**_SENT, last_error=bindparam("b_error"), next_attempt_at=bindparam("b_at")),
    ("b_id", "b_owner", "b_error", "b_at"),
)
_MARK_RELEASED = BulkStatement(
    update(DELIVERIES).where(_OURS).values(lease_owner=null(), lease_until=null()),
    ("b_id", "b_owner"),
)


async def record_outcomes(engine: AsyncEngine, owner: str, outcomes: Sequence[Outcome]) -> None:
    """Record the outcome of several attempts in one transaction (one SQLite write lock), one
    statement per kind of outcome rather than one per delivery.

    Only rows this owner still leases change: if our lease ran out and another loop took the
    delivery over, its outcome is the one that counts.
    """
    delivered: list[Delivered] = []
    dead: list[tuple[object, ...]] = []
    retry: list[tuple[object, ...]] = []
    released: list[tuple[object, ...]] = []
    for outcome in outcomes:
        if isinstance(outcome, Delivered):
            delivered.append(outcome)
        elif isinstance(outcome, Released):
            released.append((outcome.delivery_id, owner))
        elif outcome.retry_at is None:
            dead.append((outcome.delivery_id, owner, outcome.error))
        else:
            retry.append((outcome.delivery_id, owner, outcome.error, outcome.retry_at))
    if not outcomes:
        return
    async with engine.begin() as conn:
        await _mark_delivered(conn, owner, delivered)
        await _MARK_DEAD.execute(conn, dead)
        await _MARK_RETRY.execute(conn, retry)
        await _MARK_RELEASED.execute(conn, released)


async def _mark_delivered(
    conn: AsyncConnection, owner: str, delivered: Sequence[Delivered]
) -> None:
    if not delivered:
        return
    await _MARK_DELIVERED.execute(
        conn, [d.delivery_id for d in delivered], [d.at for d in delivered], {"b_owner": owner}
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
