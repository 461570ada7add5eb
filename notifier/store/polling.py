"""The watch store on SQLite and PostgreSQL: the poller's claims and writes, all its SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Insert,
    bindparam,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.core.events import STATE_CHANGED, Event
from notifier.core.lease import Lease
from notifier.core.poll_plan import ClaimedWatch, PollPlan
from notifier.core.schedule import Known, on_clock
from notifier.core.timing import Tracking
from notifier.store.codec import (
    MEMORY_COLUMNS,
    event_from_row,
    memory_from_values,
    memory_to_values,
    status_to_json,
)
from notifier.store.engine import conflict_insert
from notifier.store.tables import (
    DELIVERIES,
    EVENTS,
    JOB_STATUS,
    SLACK_MESSAGES,
    WATCHES,
)
from notifier.store.watch_store import (
    CANDIDATE_LIMIT,
    Claim,
    PollResults,
    PollWrite,
    Ranker,
)

__all__ = ["SqlWatchStore"]


class SqlWatchStore:
    """:class:`notifier.store.watch_store.WatchStore` over the service's database.

    Every transaction here is one round of the poll: the claim (read, then lease exactly those
    rows), and the batch's write. On PostgreSQL the claim skips rows another replica is leasing
    at that moment (``FOR UPDATE SKIP LOCKED``); SQLite renders no row lock and needs none, its
    transactions starting with ``BEGIN IMMEDIATE`` (:mod:`notifier.store.engine`).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim_due(
        self, lease: Lease, limit: int, due_by: datetime, rank: Ranker | None = None
    ) -> Claim:
        params = {"now": lease.start, "due_by": due_by}
        async with self._engine.begin() as conn:
            # Read first, then lease exactly those ids: both go through indexes (due order,
            # primary key), where reading back "what this lease holds" would scan the table.
            rows: Sequence[Sequence[Any]]
            if rank is None:
                rows = (await conn.execute(_DUE.limit(limit), params)).all()
            else:
                # The candidates are locked (PostgreSQL) until this short transaction ends; only
                # the chosen ones are leased.
                ranked = (
                    await conn.execute(_DUE_RANKED.limit(max(limit, CANDIDATE_LIMIT)), params)
                ).all()
                by_id = {row[0]: row for row in ranked}
                chosen = rank([_known(row) for row in ranked], due_by)[:limit]
                rows = [by_id[ident][: len(_DUE.selected_columns)] for ident in chosen]
            if rows:
                await conn.execute(
                    _LEASE,
                    {"ids": [row[0] for row in rows], "owner": lease.owner, "until": lease.until},
                )
        return Claim(lease.owner, lease.until, [_claimed(row) for row in rows])

    async def load_memory(self, watches: Sequence[ClaimedWatch]) -> list[ClaimedWatch]:
        if not watches:
            return []
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_MEMORY, {"ids": [w.watch_id for w in watches]})).all()
        by_id = {row[0]: row[1:] for row in rows}
        loaded = []
        for watch in watches:
            memory = by_id.get(watch.watch_id)
            if memory is None:
                continue  # removed since the claim
            if memory[1] is not None:  # a stored state name: seen before
                status, tracking = memory_from_values(watch.image_version_id, memory)
                watch = watch._replace(previous=status, tracking=tracking)
            loaded.append(watch)
        return loaded

    async def record_polls(self, claim: Claim, results: PollResults, now: datetime) -> PollWrite:
        if not results.plans and not results.unchanged:
            return PollWrite([], 0)
        held = {"owner": claim.owner, "held_until": claim.lease_until}
        async with self._engine.begin() as conn:
            unchanged = 0
            for next_at, ids in results.unchanged.items():
                written = await conn.execute(
                    _UNCHANGED, {**held, "ids": list(ids), "next_poll_at": next_at, "now": now}
                )
                unchanged += written.rowcount
            if not results.plans:
                return PollWrite([], unchanged)
            ours = set(
                (
                    await conn.execute(_HELD, {**held, "ids": [p.watch_id for p in results.plans]})
                ).scalars()
            )
            plans = [p for p in results.plans if p.watch_id in ours]
            if plans:
                await _write_plans(conn, plans, results, ours, now)
        return PollWrite(plans, unchanged)

    async def release(self, owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(WATCHES)
                .where(WATCHES.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def recent_state_changes(self, limit: int) -> list[Event]:
        query = (
            select(EVENTS)
            .where(EVENTS.c.type == STATE_CHANGED)
            .order_by(EVENTS.c.seq.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [event_from_row(row) for row in reversed(rows)]


def _claimed(row: Sequence[Any]) -> ClaimedWatch:
    """A row of :data:`_DUE` as a claimed watch, its stored status not loaded."""
    ident, asid, ivid, label, errors, since, failing, interval, digest, quiet, due, state = row
    return ClaimedWatch(
        ident,
        asid,
        ivid,
        label,
        errors,
        None,
        since,
        None,
        failing,
        interval,
        digest,
        quiet,
        due,
        state,
    )


def _known(row: Sequence[Any]) -> Known:
    """A row of :data:`_DUE_RANKED` as the scheduler reads it."""
    ident, asid, _, _, _, since, _, _, _, _, due, state = row[:12]
    polled, progress, eta, estimated, rate_since, base, started, updated = row[12:]
    return Known(
        ident,
        asid,
        state,
        on_clock(polled),
        on_clock(due),
        state_since=on_clock(since),
        progress=progress or 0,
        eta=on_clock(eta),
        eta_estimated=bool(estimated),
        rate_since=on_clock(rate_since),
        rate_base_progress=base or 0,
        run_started=on_clock(started),
        updated=on_clock(updated),
    )


_W = WATCHES.c
_S = JOB_STATUS.c
_DUE = (
    select(
        _W.id,
        _W.account_service_id,
        _W.image_version_id,
        _W.label,
        _W.poll_errors,
        _S.state_since,
        _W.poll_failing,
        _W.interval_seconds,
        _S.reply_digest,
        _W.quiet_until,
        _W.next_poll_at,
        _S.state_id,
    )
    .select_from(WATCHES.outerjoin(JOB_STATUS, _S.watch_id == _W.id))
    .where(
        _W.active.is_(True),
        _W.next_poll_at <= bindparam("due_by", type_=_W.next_poll_at.type),
        or_(_W.lease_until.is_(None), _W.lease_until < bindparam("now", type_=_W.lease_until.type)),
    )
    # Ties (watches added or made due together) go in the order they were added.
    .order_by(_W.next_poll_at, _W.id)
    # PostgreSQL: the watch rows only, since the status side of the outer join may not exist.
    .with_for_update(of=WATCHES, skip_locked=True)
)


# The due watches with what the budget-aware scheduler ranks them by.
_DUE_RANKED = _DUE.add_columns(
    _W.last_polled_at,
    _S.progress,
    _S.eta,
    _S.eta_estimated,
    _S.rate_since,
    _S.rate_base_progress,
    _S.job_started,
    _S.job_updated,
)


def _among(ids: str) -> Any:
    return _W.id.in_(bindparam(ids, expanding=True))


_LEASE = (
    update(WATCHES)
    .where(_among("ids"))
    .values(
        lease_owner=bindparam("owner"), lease_until=bindparam("until", type_=_W.lease_until.type)
    )
)

_STILL_HELD = (
    _W.lease_owner == bindparam("owner"),
    _W.lease_until == bindparam("held_until", type_=_W.lease_until.type),
)

_MEMORY = (
    select(_W.id, *(_S[name] for name in MEMORY_COLUMNS))
    .select_from(WATCHES.outerjoin(JOB_STATUS, _S.watch_id == _W.id))
    .where(_among("ids"))
)

# Which of a batch's watches are still its claim's, locked on PostgreSQL until the write ends.
_HELD = select(_W.id).where(_among("ids"), *_STILL_HELD).with_for_update()

# What every written poll does to its watch besides its own columns: the claim's lease back.
_RELEASED: Final = {"lease_owner": None, "lease_until": None}

# Everything an unchanged poll writes: the new schedule, and a clean bill of health.
_UNCHANGED = (
    update(WATCHES)
    .where(_among("ids"), *_STILL_HELD)
    .values(
        next_poll_at=bindparam("next_poll_at", type_=_W.next_poll_at.type),
        last_polled_at=bindparam("now", type_=_W.last_polled_at.type),
        poll_errors=0,
        last_poll_error=None,
        poll_failing=False,
        paused_reason=None,
        **_RELEASED,
    )
)

# A planned poll's watch row, one executemany row per plan (its lease already checked).
_PLANNED = (
    update(WATCHES)
    .where(_W.id == bindparam("b_id"))
    .values(
        {
            **{
                name: bindparam(name, type_=_W[name].type)
                for name in (
                    "next_poll_at",
                    "quiet_until",
                    "poll_errors",
                    "last_poll_error",
                    "last_polled_at",
                    "poll_failing",
                    "paused_reason",
                )
            },
            **_RELEASED,
        }
    )
)

_STATUS_UPDATE = (
    update(JOB_STATUS)
    .where(_S.watch_id == bindparam("b_watch_id"))
    .values(
        {
            name: bindparam(name, type_=_S[name].type)
            for name in (*MEMORY_COLUMNS, "observed_at", "state_since", "reply_digest")
        }
    )
)


async def _write_plans(
    conn: AsyncConnection,
    plans: Sequence[PollPlan],
    results: PollResults,
    ours: set[int],
    now: datetime,
) -> None:
    """The statuses, events, deliveries, refreshes and watch rows of the batch's planned polls,
    a statement (an executemany) each."""
    first: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for plan in plans:
        if plan.status is not None:
            status = dict(
                zip(
                    MEMORY_COLUMNS,
                    memory_to_values(plan.status, plan.tracking or Tracking()),
                    strict=True,
                ),
                observed_at=now,
                state_since=plan.state_since,
                reply_digest=plan.reply_digest,
            )
            if plan.first_sighting:
                first.append({"watch_id": plan.watch_id, **status})
            else:
                changed.append({"b_watch_id": plan.watch_id, **status})
        events.extend(
            {
                "id": e.id,
                "watch_id": plan.watch_id,
                "type": e.type,
                "account_service_id": e.account_service_id,
                "image_version_id": e.image_version_id,
                "label": e.label,
                "previous": None if e.previous is None else status_to_json(e.previous),
                "current": status_to_json(e.current),
                "detail": dict(e.detail) or None,
                "occurred_at": e.occurred_at,
                "silence_id": results.held.get(plan.watch_id),
            }
            for e in plan.events
        )
    if first:
        await conn.execute(insert(JOB_STATUS), first)
    if changed:
        await conn.execute(_STATUS_UPDATE, changed)
    if events:
        await conn.execute(insert(EVENTS), events)
    deliveries = [
        {
            "event_id": d.event_id,
            "subscription_id": d.subscription_id,
            "watch_id": d.watch_id,
            "kind": "event",
            # Held by a silence: not sent; its end makes the last one the live message's resume.
            "status": "pending" if d.silence_id is None else "held",
            "silence_id": d.silence_id,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for d in results.deliveries
        if d.watch_id in ours
    ]
    if deliveries:
        await conn.execute(insert(DELIVERIES), deliveries)
    refreshes = [
        {"b_sub": r.subscription_id, "b_watch": r.watch_id}
        for r in results.refreshes
        if r.watch_id in ours
    ]
    if refreshes:
        await conn.execute(live_refresh_insert(conn, now), refreshes)
    await conn.execute(
        _PLANNED,
        [
            {
                "b_id": p.watch_id,
                "next_poll_at": p.next_poll_at,
                "quiet_until": p.quiet_until,
                "poll_errors": p.poll_errors,
                "last_poll_error": p.last_poll_error,
                "last_polled_at": now,
                "poll_failing": p.poll_failing,
                "paused_reason": p.paused_reason,
            }
            for p in plans
        ],
    )


def live_refresh_insert(conn: AsyncConnection, now: datetime) -> Insert:
    """Queue a refresh where the live message exists, merged into an unclaimed one if queued.

    One statement for the batch (executemany): the live-message check is its SELECT and the
    merge is the unique (subscription, watch, refresh_slot) key with ON CONFLICT DO NOTHING
    (:func:`notifier.store.engine.conflict_insert`).
    """
    live = (
        select(
            null().label("event_id"),
            SLACK_MESSAGES.c.subscription_id,
            _W.id,
            literal("refresh").label("kind"),
            true().label("refresh_slot"),
            literal("pending").label("status"),
            literal(0).label("attempts"),
            literal(now, DELIVERIES.c.next_attempt_at.type).label("next_attempt_at"),
            literal(now, DELIVERIES.c.created_at.type).label("created_at"),
        )
        .join(
            WATCHES,
            (_W.account_service_id == SLACK_MESSAGES.c.account_service_id)
            & (_W.image_version_id == SLACK_MESSAGES.c.image_version_id),
        )
        .where(
            _W.id == bindparam("b_watch"),
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
    return conflict_insert(conn, DELIVERIES).from_select(columns, live).on_conflict_do_nothing()
