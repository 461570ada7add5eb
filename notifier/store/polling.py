"""The poller's two round trips to the database: claim what is due, write what a tick saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Table,
    Update,
    bindparam,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.core.poll_plan import (
    ClaimedWatch,
    DueWatch,
    PlannedDelivery,
    PlannedRefresh,
    PollPlan,
)
from notifier.core.timing import Tracking
from notifier.store.bulk import BulkStatement
from notifier.store.codec import (
    MEMORY_COLUMNS,
    memory_from_values,
    memory_to_values,
    status_json_text,
)
from notifier.store.engine import is_postgres
from notifier.store.id_lists import MomentPairsUpdate, among_ids
from notifier.store.tables import (
    DELIVERIES,
    EVENTS,
    JOB_STATUS,
    SLACK_MESSAGES,
    WATCHES,
    JobStatusRow,
    Watch,
)


async def claim_due_watches(
    engine: AsyncEngine,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    due_by: datetime | None = None,
) -> tuple[datetime, list[ClaimedWatch]]:
    """Lease up to ``limit`` watches due by ``due_by`` (default ``now``) to ``owner``; returns
    the lease token and the watches.

    The lease expiry doubles as the claim's token: together with the owner it tells the batch's
    write which rows are still this claim's. Only the columns that poll a watch and tell whether
    its reply is news are read; :func:`load_due_watches` reads the rest for the few watches that
    need it.
    """
    until = now + lease
    due = _CLAIMED.limit(limit)
    if is_postgres(engine):
        # Only the watch rows are locked: the status side of the outer join may not exist.
        due = due.with_for_update(of=WATCHES, skip_locked=True)
    async with engine.begin() as conn:
        # Read first, then lease exactly those ids: both statements go through indexes (due
        # time, primary key), where reading back "what this lease holds" would scan the table.
        rows = (
            await conn.execute(due, {"now": now, "due_by": now if due_by is None else due_by})
        ).all()
        if rows:
            await conn.execute(
                _LEASE, {"ids": [row[0] for row in rows], "owner": owner, "until": until}
            )
    # The select's columns are ClaimedWatch's fields, in order.
    return until, [ClaimedWatch(*row) for row in rows]


_CLAIMED = (
    select(
        Watch.id,
        Watch.account_service_id,
        Watch.image_version_id,
        Watch.poll_errors,
        Watch.poll_failing,
        Watch.interval_seconds,
        JobStatusRow.reply_digest,
        JobStatusRow.state_id,
        func.coalesce(JobStatusRow.progress, 0),
        JobStatusRow.eta,
        func.coalesce(JobStatusRow.eta_estimated, false()),
        JobStatusRow.state_since,
        JobStatusRow.moved_at,
        func.coalesce(JobStatusRow.stalled, false()),
        func.coalesce(JobStatusRow.overdue, false()),
        func.coalesce(JobStatusRow.rate_base_progress, 0),
        Watch.next_poll_at,
    )
    .outerjoin(JobStatusRow, JobStatusRow.watch_id == Watch.id)
    .where(
        Watch.active.is_(True),
        Watch.next_poll_at <= bindparam("due_by", type_=WATCHES.c.next_poll_at.type),
        or_(
            Watch.lease_until.is_(None),
            Watch.lease_until < bindparam("now", type_=WATCHES.c.lease_until.type),
        ),
    )
    # Ties (watches added or made due together) go in the order they were added.
    .order_by(Watch.next_poll_at, Watch.id)
)
_LEASE = (
    update(WATCHES)
    .where(among_ids(WATCHES.c.id, "ids"))
    .values(
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until", type_=WATCHES.c.lease_until.type),
    )
)


async def load_due_watches(engine: AsyncEngine, claimed: Sequence[ClaimedWatch]) -> list[DueWatch]:
    """The full memory (stored status, timing, label) of claimed watches, in their order."""
    if not claimed:
        return []
    async with engine.connect() as conn:
        rows = (await conn.execute(_MEMORY, {"ids": [w.watch_id for w in claimed]})).all()
    by_id = {row[0]: row for row in rows}
    due = []
    for watch in claimed:
        row = by_id.get(watch.watch_id)
        if row is None:
            continue  # removed since the claim
        _, label, state_since, digest, *memory = row
        status, tracking = (
            (None, None)
            if memory[1] is None  # no state name: never seen
            else memory_from_values(watch.image_version_id, memory)
        )
        due.append(
            DueWatch(
                watch_id=watch.watch_id,
                account_service_id=watch.account_service_id,
                image_version_id=watch.image_version_id,
                label=label,
                poll_errors=watch.poll_errors,
                previous=status,
                state_since=state_since,
                tracking=tracking,
                poll_failing=watch.poll_failing,
                interval_seconds=watch.interval_seconds,
                reply_digest=digest,
            )
        )
    return due


_MEMORY = (
    select(
        Watch.id,
        Watch.label,
        JobStatusRow.state_since,
        JobStatusRow.reply_digest,
        *(JOB_STATUS.c[name] for name in MEMORY_COLUMNS),
    )
    .outerjoin(JobStatusRow, JobStatusRow.watch_id == Watch.id)
    .where(among_ids(WATCHES.c.id, "ids"))
)


@dataclass(frozen=True, slots=True)
class PollWrite:
    """What one write of a batch's polls took effect on."""

    plans: list[PollPlan]
    """The plans written (those of watches whose lease was still this claim's)."""
    quiet: int
    """Quiet polls written: only their schedule."""


async def write_poll_results(
    engine: AsyncEngine,
    owner: str,
    token: datetime,
    plans: Sequence[PollPlan],
    deliveries: Sequence[PlannedDelivery],
    now: datetime,
    refreshes: Sequence[PlannedRefresh] = (),
    quiet: Mapping[datetime | None, Sequence[int]] | None = None,
) -> PollWrite:
    """Write a batch's statuses, events, deliveries and schedules in ONE transaction.

    That transaction is the delivery guarantee: a crash before it loses nothing (the next poll
    sees the same difference), a crash after it leaves deliveries to send. A watch whose lease ran
    out meanwhile (another replica may have it now) is left alone. ``quiet`` holds the watches
    whose poll was no news, by their next poll: one UPDATE per schedule sets them all.
    """
    quiet = quiet or {}
    if not plans and not quiet:
        return PollWrite([], 0)
    async with engine.begin() as conn:
        quiet_written = 0
        for next_at, ids in quiet.items():
            result = await conn.execute(
                _QUIET_UPDATE,
                {
                    "next_poll_at": next_at,
                    "last_polled_at": now,
                    "ids": ids,
                    "owner": owner,
                    "token": token,
                },
            )
            quiet_written += result.rowcount
        if not plans:
            return PollWrite([], quiet_written)
        memo: dict[Any, Any] = {}
        # A successful poll leaves a watch healthy: only its schedule differs from a quiet
        # one's. Those schedules go in one set-based UPDATE, whose RETURNING is also their
        # lease check; the rest (failures, rare) are checked here and updated row by row below.
        healthy = [p for p in plans if _is_healthy(p)]
        ours = await _write_schedules(conn, healthy, owner, token, now, memo) if healthy else set()
        if len(healthy) < len(plans):
            held = _HELD.with_for_update() if is_postgres(engine) else _HELD
            others = [p.watch_id for p in plans if not _is_healthy(p)]
            ours.update(
                (
                    await conn.execute(held, {"ids": others, "owner": owner, "token": token})
                ).scalars()
            )
        plans = [p for p in plans if p.watch_id in ours]
        deliveries = [d for d in deliveries if d.watch_id in ours]
        refreshes = [r for r in refreshes if r.watch_id in ours]
        if not plans:
            return PollWrite([], quiet_written)

        new_status: list[tuple[Any, ...]] = []
        changed_status: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        watch_updates: list[tuple[Any, ...]] = []
        for plan in plans:
            if plan.status is not None:
                status = (
                    *memory_to_values(plan.status, plan.tracking or Tracking()),
                    now,
                    plan.state_since,
                    plan.reply_digest,
                )
                (new_status if plan.first_sighting else changed_status).append(
                    (plan.watch_id, *status)
                )
            events.extend(
                (
                    e.id,
                    plan.watch_id,
                    e.type,
                    e.account_service_id,
                    e.image_version_id,
                    e.label,
                    None if e.previous is None else status_json_text(e.previous),
                    status_json_text(e.current),
                    dict(e.detail) or None,
                    e.occurred_at,
                )
                for e in plan.events
            )
            if not _is_healthy(plan):
                watch_updates.append(
                    (
                        plan.watch_id,
                        plan.next_poll_at,
                        plan.poll_errors,
                        plan.last_poll_error,
                        now,
                        plan.poll_failing,
                        plan.paused_reason,
                    )
                )

        # A changed watch's moment of polling is in its status, its event and its schedule.
        await _INSERT_STATUS.execute(conn, new_status, memo)
        await _UPDATE_STATUS.execute(conn, changed_status, memo)
        await _INSERT_EVENTS.execute(conn, events, memo)
        await _INSERT_DELIVERIES.execute(
            conn,
            [
                (d.event_id, d.subscription_id, d.watch_id, "event", "pending", 0, now, now)
                for d in deliveries
            ],
            memo,
        )
        if refreshes:
            await conn.execute(
                _refresh_insert(engine, now),
                [{"b_sub": r.subscription_id, "b_watch": r.watch_id} for r in refreshes],
            )
        await _UPDATE_WATCHES.execute(conn, watch_updates, memo)
    return PollWrite(plans, quiet_written)


def _is_healthy(plan: PollPlan) -> bool:
    """What the plan writes to its watch besides the schedule is a clean bill of health."""
    return (
        plan.poll_errors == 0
        and plan.last_poll_error is None
        and not plan.poll_failing
        and plan.paused_reason is None
    )


async def _write_schedules(
    conn: AsyncConnection,
    plans: Sequence[PollPlan],
    owner: str,
    token: datetime,
    now: datetime,
    memo: dict[Any, Any],
) -> set[int]:
    """Give healthy watches their next polls and their leases back; returns the ids it updated
    (those still this claim's).

    One statement for the batch over the (id, next poll) pairs (:class:`MomentPairsUpdate`). Per
    row, executemany and a separate lease check cost about a microsecond more on SQLite.
    """
    written = await _SCHEDULES.execute(
        conn,
        [p.watch_id for p in plans],
        [p.next_poll_at for p in plans],
        {"now": now, "owner": owner, "token": token},
        memo,
    )
    return set(written.scalars())


# What a successful poll writes to its watch besides the schedule: a clean bill of health, and
# the claim's lease given back.
_HEALTHY_AND_RELEASED: Final[dict[str, Any]] = {
    "poll_errors": 0,
    "last_poll_error": None,
    "poll_failing": False,
    "paused_reason": None,
    "lease_owner": None,
    "lease_until": None,
}


def _schedules_update(watch_id: ColumnElement[Any], next_poll_at: ColumnElement[Any]) -> Update:
    return (
        update(WATCHES)
        .where(
            WATCHES.c.id == watch_id,
            WATCHES.c.lease_owner == bindparam("owner"),
            WATCHES.c.lease_until == bindparam("token", type_=WATCHES.c.lease_until.type),
        )
        .values(
            next_poll_at=next_poll_at,
            last_polled_at=bindparam("now", type_=WATCHES.c.last_polled_at.type),
            **_HEALTHY_AND_RELEASED,
        )
        .returning(WATCHES.c.id)
    )


_SCHEDULES = MomentPairsUpdate("schedules", WATCHES.c.next_poll_at.type, _schedules_update)


def _binds(table: Table, names: Sequence[str]) -> dict[str, BindParameter[Any]]:
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


# What a written status row holds besides its key, in the order of its row tuples.
_STATUS_NAMES = (*MEMORY_COLUMNS, "observed_at", "state_since", "reply_digest")
_INSERT_STATUS = BulkStatement(
    insert(JOB_STATUS).values(_binds(JOB_STATUS, ("watch_id", *_STATUS_NAMES))),
    ("watch_id", *_STATUS_NAMES),
)
_UPDATE_STATUS = BulkStatement(
    update(JOB_STATUS)
    .where(JOB_STATUS.c.watch_id == bindparam("b_watch_id", type_=JOB_STATUS.c.watch_id.type))
    .values(_binds(JOB_STATUS, _STATUS_NAMES)),
    ("b_watch_id", *_STATUS_NAMES),
)
_EVENT_NAMES = (
    "id",
    "watch_id",
    "type",
    "account_service_id",
    "image_version_id",
    "label",
    "previous",
    "current",
    "detail",
    "occurred_at",
)
# The statuses come as JSON text (codec.status_json_text); the detail goes through the column.
_INSERT_EVENTS = BulkStatement(
    insert(EVENTS).values(_binds(EVENTS, _EVENT_NAMES)),
    _EVENT_NAMES,
    encoded=("previous", "current"),
)
_DELIVERY_NAMES = (
    "event_id",
    "subscription_id",
    "watch_id",
    "kind",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)
_INSERT_DELIVERIES = BulkStatement(
    insert(DELIVERIES).values(_binds(DELIVERIES, _DELIVERY_NAMES)), _DELIVERY_NAMES
)
_WATCH_NAMES = (
    "next_poll_at",
    "poll_errors",
    "last_poll_error",
    "last_polled_at",
    "poll_failing",
    "paused_reason",
)
_UPDATE_WATCHES = BulkStatement(
    update(WATCHES)
    .where(WATCHES.c.id == bindparam("b_id", type_=WATCHES.c.id.type))
    .values({**_binds(WATCHES, _WATCH_NAMES), "lease_owner": null(), "lease_until": null()}),
    ("b_id", *_WATCH_NAMES),
)

# Which of a batch's watches are still its claim's (by key, not by scanning for the lease).
_HELD = select(WATCHES.c.id).where(
    among_ids(WATCHES.c.id, "ids"),
    WATCHES.c.lease_owner == bindparam("owner"),
    WATCHES.c.lease_until == bindparam("token"),
)

# Everything a quiet poll writes: the new schedule, and a clean bill of health.
_QUIET_UPDATE = (
    update(WATCHES)
    .where(
        among_ids(WATCHES.c.id, "ids"),
        WATCHES.c.lease_owner == bindparam("owner"),
        WATCHES.c.lease_until == bindparam("token"),
    )
    .values(
        next_poll_at=bindparam("next_poll_at"),
        last_polled_at=bindparam("last_polled_at"),
        **_HEALTHY_AND_RELEASED,
    )
)


async def release_watch_leases(engine: AsyncEngine, owner: str) -> None:
    """Give back watch claims at shutdown, so another replica polls them without waiting."""
    async with engine.begin() as conn:
        await conn.execute(
            update(Watch)
            .where(Watch.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )


def _refresh_insert(engine: AsyncEngine, now: datetime) -> Insert:
    """Queue a refresh where the live message exists, merged into an unclaimed one if queued.

    One statement for the whole tick (executemany): the live-message check is its SELECT and the
    merge is the unique (subscription, watch, refresh_slot) key with ON CONFLICT DO NOTHING.
    """
    live = (
        select(
            null().label("event_id"),
            SLACK_MESSAGES.c.subscription_id,
            WATCHES.c.id,
            literal("refresh").label("kind"),
            true().label("refresh_slot"),
            literal("pending").label("status"),
            literal(0).label("attempts"),
            literal(now, DELIVERIES.c.next_attempt_at.type).label("next_attempt_at"),
            literal(now, DELIVERIES.c.created_at.type).label("created_at"),
        )
        .join(
            WATCHES,
            (WATCHES.c.account_service_id == SLACK_MESSAGES.c.account_service_id)
            & (WATCHES.c.image_version_id == SLACK_MESSAGES.c.image_version_id),
        )
        .where(
            WATCHES.c.id == bindparam("b_watch"),
            SLACK_MESSAGES.c.subscription_id == bindparam("b_sub"),
            SLACK_MESSAGES.c.ts.is_not(None),
        )
    )
    columns = [
        "event_id",
        "subscription_id",
        "watch_id",
        "kind",
        "refresh_slot",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    if is_postgres(engine):
        return postgresql.insert(DELIVERIES).from_select(columns, live).on_conflict_do_nothing()
    return sqlite.insert(DELIVERIES).from_select(columns, live).on_conflict_do_nothing()
