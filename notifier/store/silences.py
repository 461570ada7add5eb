"""Silences in the database: adding, listing and expiring them, and handling their end once.

What a silence holds is decided by the poll write (events and deliveries get its id, the
deliveries wait as "held"); what happens at its end is :func:`end_silences`: the replica whose
UPDATE marks the end handled releases what it held, so every replica may run it on every tick
and the end is handled once. Each Slack live message of a released (subscription, watch) gets
one delivery back ("resume": one update to the newest state, plus one reply if the job failed
meanwhile); the other held deliveries become "silenced", never sent. Webhooks get nothing for
held events: they were recorded, and ``notifier events`` lists them with their silence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.core.live_messages import LiveControls
from notifier.core.silences import (
    HeldDelivery,
    Matchers,
    MuteShown,
    NewSilence,
    Silence,
    holding_silence,
    release_held,
)
from notifier.store.codec import from_attributes
from notifier.store.polling import live_refresh_insert
from notifier.store.tables import (
    DELIVERIES,
    EVENTS,
    SILENCES,
    SLACK_MESSAGES,
    SUBSCRIPTIONS,
    WATCHES,
)

SilenceState = Literal["active", "expired"]

_S = SILENCES.c


@dataclass(frozen=True, slots=True)
class SilenceView:
    id: int
    image_version_id: int | None
    account_service_id: int | None
    label_glob: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    source: str
    created_at: datetime
    expired_at: datetime | None
    expired_by: str | None
    state: SilenceState
    held_events: int
    """Events recorded with this silence: what it held back from being sent."""

    @property
    def matchers(self) -> Matchers:
        return Matchers(self.image_version_id, self.account_service_id, self.label_glob)

    @property
    def matches(self) -> str:
        return self.matchers.describe()

    def silence(self) -> Silence:
        return _silence(self)


@dataclass(frozen=True, slots=True)
class Expired:
    silence: SilenceView
    already: bool
    """It had ended before (expired or run out): nothing changed."""


@dataclass(frozen=True, slots=True)
class Ended:
    """What one :func:`end_silences` did."""

    silences: int = 0
    resumed: int = 0
    """Live messages given their one update back."""
    silenced: int = 0
    """Held deliveries that will never be sent."""


_COLUMNS = (
    _S.id,
    _S.image_version_id,
    _S.account_service_id,
    _S.label_glob,
    _S.starts_at,
    _S.ends_at,
    _S.reason,
    _S.created_by,
    _S.source,
    _S.created_at,
    _S.expired_at,
    _S.expired_by,
)


def _silence(row: Any) -> Silence:
    """The core's silence from a row of :data:`_COLUMNS` (or a :class:`SilenceView`)."""
    matchers = Matchers(row.image_version_id, row.account_service_id, row.label_glob)
    return from_attributes(Silence, row, matchers=matchers)


async def add_silence(
    engine: AsyncEngine, asked: NewSilence, *, source: str, now: datetime
) -> SilenceView:
    """Start a silence now; the live messages it holds are queued to show it (and its button)."""
    async with engine.begin() as conn:
        silence_id = (
            await conn.execute(
                SILENCES.insert()
                .values(
                    **asdict(asked.matchers),
                    ends_at=asked.ends_at,
                    reason=asked.reason,
                    created_by=asked.created_by,
                    starts_at=now,
                    created_at=now,
                    source=source,
                )
                .returning(_S.id)
            )
        ).scalar_one()
        await _refresh_live_messages(conn, await _matched_watches(conn, [asked.matchers]), now)
    found = await get_silence(engine, silence_id, now)
    assert found is not None
    return found


async def get_silence(engine: AsyncEngine, silence_id: int, now: datetime) -> SilenceView | None:
    found = await _views(engine, now, _S.id == silence_id)
    return found[0] if found else None


async def list_silences(
    engine: AsyncEngine, now: datetime, *, include_ended: bool = False, limit: int = 200
) -> list[SilenceView]:
    """Active silences, the soonest to end first; with ``include_ended`` the ended ones after,
    the latest first."""
    active = await _views(engine, now, _S.ends_at > now, order=_S.ends_at.asc(), limit=limit)
    if not include_ended:
        return active
    ended = await _views(engine, now, _S.ends_at <= now, order=_S.ends_at.desc(), limit=limit)
    return active + ended


async def _views(
    engine: AsyncEngine,
    now: datetime,
    where: Any,
    *,
    order: Any = None,
    limit: int | None = None,
) -> list[SilenceView]:
    held = (
        select(func.count())
        .select_from(EVENTS)
        .where(EVENTS.c.silence_id == _S.id)
        .scalar_subquery()
        .label("held_events")
    )
    stmt = select(*_COLUMNS, held).where(where).order_by(order if order is not None else _S.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        from_attributes(SilenceView, row, state="active" if row.ends_at > now else "expired")
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class HeldEvent:
    silence_id: int
    type: str
    image_version_id: int
    label: str
    occurred_at: datetime


async def held_events(
    engine: AsyncEngine, silence_ids: Sequence[int], per_silence: int = 5
) -> dict[int, list[HeldEvent]]:
    """The newest events each silence held back, for the status page."""
    if not silence_ids:
        return {}
    e = EVENTS.c
    ranked = (
        select(
            e.silence_id,
            e.type,
            e.image_version_id,
            e.label,
            e.occurred_at,
            func.row_number().over(partition_by=e.silence_id, order_by=e.seq.desc()).label("rank"),
        )
        .where(e.silence_id.in_(list(silence_ids)))
        .subquery()
    )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ranked).where(ranked.c.rank <= per_silence).order_by(ranked.c.rank)
            )
        ).all()
    found: dict[int, list[HeldEvent]] = defaultdict(list)
    for row in rows:
        found[row.silence_id].append(from_attributes(HeldEvent, row))
    return dict(found)


async def expire_silence(
    engine: AsyncEngine, silence_id: int, now: datetime, by: str
) -> Expired | None:
    """End a silence now (None: no such silence); :func:`end_silences` then releases what it
    held, so the caller runs it, or the service's next tick does."""
    async with engine.begin() as conn:
        changed = await conn.execute(
            update(SILENCES)
            .where(_S.id == silence_id, _S.ends_at > now)
            .values(ends_at=now, expired_at=now, expired_by=by)
        )
    found = await get_silence(engine, silence_id, now)
    if found is None:
        return None
    return Expired(found, already=changed.rowcount == 0)


async def expire_mutes(engine: AsyncEngine, image_version_id: int, now: datetime, by: str) -> int:
    """End the image-version-only silences of ``image_version_id`` now (what Unmute lifts, an
    operator's broader silence stays); returns how many ended."""
    async with engine.begin() as conn:
        ended = (
            await conn.execute(
                update(SILENCES)
                .where(
                    _S.image_version_id == image_version_id,
                    _S.account_service_id.is_(None),
                    _S.label_glob.is_(None),
                    _S.ends_at > now,
                )
                .values(ends_at=now, expired_at=now, expired_by=by)
            )
        ).rowcount
    return int(ended)


async def current_silences(engine: AsyncEngine, now: datetime) -> list[Silence]:
    """The silences that have not ended at ``now`` (what the poll write checks events against)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(*_COLUMNS).where(_S.ends_at > now))).all()
    return [_silence(row) for row in rows]


async def mute_shown(
    engine: AsyncEngine, account_service_id: int, image_version_id: int, now: datetime
) -> tuple[int, MuteShown | None] | None:
    """The watch's id and the silence holding it now, for its live message; None: no watch."""
    async with engine.connect() as conn:
        watch = (
            await conn.execute(
                select(WATCHES.c.id, WATCHES.c.label).where(
                    WATCHES.c.account_service_id == account_service_id,
                    WATCHES.c.image_version_id == image_version_id,
                )
            )
        ).first()
        if watch is None:
            return None
        rows = (
            await conn.execute(select(*_COLUMNS).where(_S.ends_at > now, _S.starts_at <= now))
        ).all()
    silence = holding_silence(
        (_silence(r) for r in rows), account_service_id, image_version_id, watch.label, now
    )
    return watch.id, None if silence is None else MuteShown.of(silence)


def controls_lookup(
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    watch_page: Callable[[int], str | None],
    *,
    buttons: bool = True,
) -> Callable[[int, int], Awaitable[LiveControls | None]]:
    """What the Slack sink asks when rendering a live message: its watch, the silence holding
    it now, and ``watch_page(watch_id)`` for "Open" (None: no such button); ``buttons`` False
    shows the mute without buttons."""

    async def lookup(account_service_id: int, image_version_id: int) -> LiveControls | None:
        found = await mute_shown(engine, account_service_id, image_version_id, clock())
        if found is None:
            return None
        watch_id, mute = found
        return LiveControls(
            watch_id=watch_id,
            account_service_id=account_service_id,
            image_version_id=image_version_id,
            mute=mute,
            open_url=watch_page(watch_id),
            buttons=buttons,
        )

    return lookup


async def end_silences(engine: AsyncEngine, now: datetime) -> Ended:
    """Handle the silences that have ended and nobody handled yet, in one transaction.

    The UPDATE that marks them handled is the claim: on PostgreSQL a second replica's waits
    for the first's row locks and then finds nothing left to mark; on SQLite the write
    transactions take turns (BEGIN IMMEDIATE). Held deliveries are released whatever silence
    held them once none holds their watch any more (an overlapping silence keeps holding).
    """
    async with engine.begin() as conn:
        ended = (
            await conn.execute(
                update(SILENCES)
                .where(_S.end_handled_at.is_(None), _S.ends_at <= now)
                .values(end_handled_at=now)
                .returning(*_COLUMNS)
            )
        ).all()
        if not ended and not await _orphans(conn):
            return Ended()
        active = [
            _silence(row)
            for row in (
                await conn.execute(select(*_COLUMNS).where(_S.ends_at > now, _S.starts_at <= now))
            ).all()
        ]
        revived, silenced, resumed_pairs = await _release_held(conn, active, now)
        # The other live messages that showed this mute: one refresh takes it off (or shows the
        # silence that still holds them).
        if ended:
            matched = await _matched_watches(conn, [_silence(row).matchers for row in ended])
            await _refresh_live_messages(conn, matched, now, skip=resumed_pairs)
    return Ended(silences=len(ended), resumed=revived, silenced=silenced)


def _handled() -> Any:
    return select(_S.id).where(_S.end_handled_at.is_not(None)).scalar_subquery()


async def _orphans(conn: AsyncConnection) -> bool:
    """Held deliveries whose silence's end was already handled: a poll that saw the job just
    before the end committed just after the end was handled. The next tick releases them."""
    d = DELIVERIES.c
    found = await conn.scalar(
        select(d.id).where(d.status == "held", d.silence_id.in_(_handled())).limit(1)
    )
    return found is not None


async def _release_held(
    conn: AsyncConnection, active: Sequence[Silence], now: datetime
) -> tuple[int, int, frozenset[tuple[int, int]]]:
    """Read the held deliveries whose silence's end is handled, release them as
    :func:`notifier.core.silences.release_held` decides, and write that: how many resumed, how
    many silenced, and the (subscription, watch) pairs resumed."""
    d, e, w, s = DELIVERIES.c, EVENTS.c, WATCHES.c, SUBSCRIPTIONS.c
    rows = (
        await conn.execute(
            select(
                d.id,
                d.subscription_id,
                d.watch_id,
                s.kind,
                w.account_service_id,
                w.image_version_id,
                w.label,
                e.current,
                e.previous,
            )
            .join(EVENTS, e.id == d.event_id)
            .join(WATCHES, w.id == d.watch_id)
            .join(SUBSCRIPTIONS, s.id == d.subscription_id)
            .where(d.status == "held", d.silence_id.in_(_handled()))
        )
    ).all()
    release = release_held(
        (
            HeldDelivery(
                id=row.id,
                subscription_id=row.subscription_id,
                subscription_kind=row.kind,
                watch_id=row.watch_id,
                account_service_id=row.account_service_id,
                image_version_id=row.image_version_id,
                label=row.label,
                state_id=row.current.get("state_id"),
                previous_state_id=None if row.previous is None else row.previous.get("state_id"),
            )
            for row in rows
        ),
        active,
        now,
    )
    revived = silenced = 0
    if release.resume:
        revived = (
            await conn.execute(
                update(DELIVERIES)
                .where(d.id.in_(release.resume), d.status == "held")
                .values(status="pending", kind="resume", next_attempt_at=now)
            )
        ).rowcount
    if release.silence:
        silenced = (
            await conn.execute(
                update(DELIVERIES)
                .where(d.id.in_(release.silence), d.status == "held")
                .values(status="silenced")
            )
        ).rowcount
    return revived, silenced, release.resumed


@dataclass(frozen=True, slots=True)
class _WatchKey:
    id: int
    account_service_id: int
    image_version_id: int
    label: str


async def _matched_watches(conn: AsyncConnection, matchers: Iterable[Matchers]) -> list[_WatchKey]:
    """The watches any of ``matchers`` holds (narrowed in SQL by id where one names an id)."""
    wanted = list(matchers)
    w = WATCHES.c
    narrowing = []
    for m in wanted:
        if m.image_version_id is not None:
            narrowing.append(w.image_version_id == m.image_version_id)
        elif m.account_service_id is not None:
            narrowing.append(w.account_service_id == m.account_service_id)
        else:
            narrowing = []  # a label glob alone: every watch is a candidate
            break
    stmt = select(w.id, w.account_service_id, w.image_version_id, w.label)
    if narrowing:
        stmt = stmt.where(or_(*narrowing))
    rows = (await conn.execute(stmt)).all()
    return [
        _WatchKey(r.id, r.account_service_id, r.image_version_id, r.label)
        for r in rows
        if any(m.matches(r.account_service_id, r.image_version_id, r.label) for m in wanted)
    ]


async def _refresh_live_messages(
    conn: AsyncConnection,
    watches: Sequence[_WatchKey],
    now: datetime,
    skip: Collection[tuple[int, int]] = (),
) -> None:
    """Queue a refresh of every posted live message of ``watches`` (merged into one queued)."""
    if not watches:
        return
    by_key = {(k.account_service_id, k.image_version_id): k.id for k in watches}
    m = SLACK_MESSAGES.c
    rows = (
        await conn.execute(
            select(m.subscription_id, m.account_service_id, m.image_version_id).where(
                and_(m.ts.is_not(None), m.image_version_id.in_([k[1] for k in by_key]))
            )
        )
    ).all()
    pairs = [
        {"b_sub": r.subscription_id, "b_watch": by_key[(r.account_service_id, r.image_version_id)]}
        for r in rows
        if (r.account_service_id, r.image_version_id) in by_key
    ]
    pairs = [p for p in pairs if (p["b_sub"], p["b_watch"]) not in skip]
    if pairs:
        await conn.execute(live_refresh_insert(conn, now), pairs)
