"""The watch list: adding, removing, listing, and syncing the configuration file's entries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.status import JobStatus
from notifier.store.codec import from_attributes, status_from_row
from notifier.store.inserts import insert_new
from notifier.store.tables import JOB_STATUS, WATCHES, JobStatusRow, Watch

SOURCES = ("config", "cli", "api", "slack", "discovered")


class DuplicateWatch(Exception):
    def __init__(self, account_service_id: int, image_version_id: int) -> None:
        super().__init__(
            f"image version {image_version_id} of account service {account_service_id} "
            "is already watched"
        )


@dataclass(frozen=True, slots=True)
class ConfigWatch:
    """A ``[[watch]]`` entry of the configuration file, as the sync needs it."""

    account_service_id: int
    image_version_id: int
    label: str = ""
    interval_seconds: float | None = None
    """Overrides the state-based poll interval while the job is not finished."""
    owners: tuple[str, ...] = ()
    """Slack mentions, checked by :func:`notifier.core.mentions.check_owners`."""


@dataclass(frozen=True, slots=True)
class WatchView:
    """A watch as people look at it: the watch and its last known status (by default, a watch
    never polled)."""

    id: int
    account_service_id: int
    image_version_id: int
    label: str
    source: str
    active: bool
    next_poll_at: datetime | None = None
    last_polled_at: datetime | None = None
    poll_errors: int = 0
    last_poll_error: str | None = None
    status: JobStatus | None = None
    lease_owner: str | None = None
    """The replica polling it right now, if any."""
    paused_reason: str | None = None
    poll_failing: bool = False
    owners: tuple[str, ...] = ()


async def add_watch(
    engine: AsyncEngine,
    account_service_id: int,
    image_version_id: int,
    label: str,
    source: str,
    now: datetime,
    *,
    interval_seconds: float | None = None,
    owners: Sequence[str] = (),
) -> int:
    """A new watch, polled from now; ``interval_seconds`` overrides the poll interval by state;
    ``owners`` (checked mentions) are paged about its failures."""
    row = WATCHES.insert().values(
        _new_watch(
            account_service_id,
            image_version_id,
            source,
            now,
            label=label,
            interval_seconds=interval_seconds,
            owners=owners,
        )
    )
    return await insert_new(
        engine, row, lambda: DuplicateWatch(account_service_id, image_version_id)
    )


def _new_watch(
    account_service_id: int,
    image_version_id: int,
    source: str,
    now: datetime,
    *,
    label: str = "",
    interval_seconds: float | None = None,
    owners: Sequence[str] = (),
) -> dict[str, Any]:
    """A new watch's row, however it came (CLI, API, Slack, the file, discovery): active,
    polled from now, no poll errors yet."""
    return {
        "account_service_id": account_service_id,
        "image_version_id": image_version_id,
        "label": label,
        "source": source,
        "active": True,
        "next_poll_at": now,
        "poll_errors": 0,
        "created_at": now,
        "interval_seconds": interval_seconds,
        # Named only when there are any: a watch without owners is written as before.
        **({"owners": list(owners)} if owners else {}),
    }


async def remove_watch(
    engine: AsyncEngine, image_version_id: int, account_service_id: int | None = None
) -> int:
    """Delete the watch (and its history); returns how many were removed."""
    stmt = delete(Watch).where(Watch.image_version_id == image_version_id)
    if account_service_id is not None:
        stmt = stmt.where(Watch.account_service_id == account_service_id)
    async with engine.begin() as conn:
        return (await conn.execute(stmt)).rowcount


async def list_watches(
    engine: AsyncEngine,
    *,
    watch_id: int | None = None,
    active: bool | None = None,
    account_service_id: int | None = None,
    image_version_id: int | None = None,
    image_version_ids: Collection[int] | None = None,
    source: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[WatchView]:
    """Watches with their last known status, narrowed by whichever filters are given, in the
    order of their account service and image version (``limit`` and ``offset`` page through
    it)."""
    status_columns = [c for c in JOB_STATUS.c if c.name != "watch_id"]
    stmt = (
        select(Watch, *status_columns)
        .outerjoin(JobStatusRow, JobStatusRow.watch_id == Watch.id)
        .order_by(Watch.account_service_id, Watch.image_version_id)
    )
    equal_to = (
        (Watch.id, watch_id),
        (Watch.active, active),
        (Watch.account_service_id, account_service_id),
        (Watch.image_version_id, image_version_id),
        (Watch.source, source),
    )
    stmt = stmt.where(*(column == value for column, value in equal_to if value is not None))
    if image_version_ids is not None:
        stmt = stmt.where(Watch.image_version_id.in_(image_version_ids))
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        from_attributes(
            WatchView,
            row,
            status=None if row.state_name is None else status_from_row(row.image_version_id, row),
            poll_failing=bool(row.poll_failing),
            owners=tuple(row.owners or ()),
        )
        for row in rows
    ]


async def count_watches(engine: AsyncEngine) -> int:
    """How many watches there are, active or not."""
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(Watch)) or 0)


async def get_watch(engine: AsyncEngine, watch_id: int) -> WatchView | None:
    found = await list_watches(engine, watch_id=watch_id)
    return found[0] if found else None


async def set_watch_active(engine: AsyncEngine, watch_id: int, active: bool, now: datetime) -> bool:
    """Pause (no more polls) or resume (poll now) a watch; False when there is no such watch."""
    values: dict[str, object] = {"active": active}
    if active:
        values["next_poll_at"] = now
    async with engine.begin() as conn:
        result = await conn.execute(update(Watch).where(Watch.id == watch_id).values(**values))
    return result.rowcount > 0


async def set_watch_owners(engine: AsyncEngine, watch_id: int, owners: Sequence[str]) -> bool:
    """Replace a watch's owners (checked mentions); False when there is no such watch."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(Watch).where(Watch.id == watch_id).values(owners=list(owners) or None)
        )
    return result.rowcount > 0


async def add_watch_owners(engine: AsyncEngine, watch_id: int, owners: Sequence[str]) -> None:
    """Add owners (checked mentions) to a watch's, keeping the ones it has, in one transaction.

    The read locks the row (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    serialises), so two adds at once both land instead of the later write dropping the other's.
    """
    async with engine.begin() as conn:
        found = await conn.scalar(
            select(Watch.owners).where(Watch.id == watch_id).with_for_update()
        )
        merged = list(dict.fromkeys([*(found or ()), *owners]))
        await conn.execute(update(Watch).where(Watch.id == watch_id).values(owners=merged))


async def remove_watch_by_id(engine: AsyncEngine, watch_id: int) -> bool:
    """Delete the watch and its history; False when there is no such watch."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(Watch).where(Watch.id == watch_id))
    return result.rowcount > 0


@dataclass(frozen=True, slots=True)
class WatchSync:
    """What a config sync changed, so each replica can say whether it was the one that did."""

    added: int
    updated: int
    retired: int


async def resume_watches(
    engine: AsyncEngine,
    now: datetime,
    *,
    image_version_id: int | None = None,
    account_service_id: int | None = None,
) -> int:
    """Poll paused watches again from now (all of them, or those named); returns how many.

    The failing flag and the count of failed polls stay, so the first poll that works again
    sends watch.poll_recovered saying how many failed.
    """
    stmt = update(Watch).where(Watch.paused_reason.is_not(None))
    if image_version_id is not None:
        stmt = stmt.where(Watch.image_version_id == image_version_id)
    if account_service_id is not None:
        stmt = stmt.where(Watch.account_service_id == account_service_id)
    async with engine.begin() as conn:
        result = await conn.execute(
            stmt.values(paused_reason=None, next_poll_at=now).execution_options(
                synchronize_session=False
            )
        )
        return result.rowcount


async def add_discovered_watches(
    engine: AsyncEngine, account_service_id: int, image_version_ids: Sequence[int], now: datetime
) -> list[int]:
    """Watch the image versions not watched yet (source ``discovered``); returns the new ones.

    A pair already in the list, whatever its source or state, is left exactly as it is: someone
    may have removed a label or stopped it on purpose.
    """
    if not image_version_ids:
        return []
    try:
        return await _insert_discovered(engine, account_service_id, image_version_ids, now)
    except IntegrityError:
        # Another replica added some of them between our read and our insert: they are watched
        # either way, and the next round adds whatever is still missing.
        return []


async def _insert_discovered(
    engine: AsyncEngine, account_service_id: int, image_version_ids: Sequence[int], now: datetime
) -> list[int]:
    async with engine.begin() as conn:
        known = set(
            (
                await conn.execute(
                    select(Watch.image_version_id).where(
                        Watch.account_service_id == account_service_id,
                        Watch.image_version_id.in_(list(image_version_ids)),
                    )
                )
            ).scalars()
        )
        new = [ivid for ivid in dict.fromkeys(image_version_ids) if ivid not in known]
        if new:
            await conn.execute(
                WATCHES.insert(),
                [_new_watch(account_service_id, ivid, "discovered", now) for ivid in new],
            )
    return new


_SYNCED = select(
    Watch.id,
    Watch.account_service_id,
    Watch.image_version_id,
    Watch.label,
    Watch.source,
    Watch.active,
    Watch.interval_seconds,
    Watch.owners,
)
# Keys looked up per statement: two bound values each, well under SQLite's limit.
_KEYS_PER_LOOKUP = 500


async def sync_config_watches(
    engine: AsyncEngine, watches: Sequence[ConfigWatch], now: datetime
) -> WatchSync:
    """Make the database's config-sourced watches match the file, in one transaction.

    New entries start polling now; entries gone from the file stop being polled but keep their
    history; a watch someone added by hand and then put in the file becomes the file's.
    """
    wanted = {(w.account_service_id, w.image_version_id): w for w in watches}
    added = updated = 0
    async with engine.begin() as conn:
        # Only the file's own rows and those of the keys it lists, so that start-up memory does
        # not grow with watches added at run time or discovered.
        existing = {
            (row.account_service_id, row.image_version_id): row
            for row in (await conn.execute(_SYNCED.where(Watch.source == "config"))).all()
        }
        others = [key for key in wanted if key not in existing]
        for start in range(0, len(others), _KEYS_PER_LOOKUP):
            keys = others[start : start + _KEYS_PER_LOOKUP]
            by_key = _SYNCED.where(
                tuple_(Watch.account_service_id, Watch.image_version_id).in_(keys)
            )
            existing.update(
                ((row.account_service_id, row.image_version_id), row)
                for row in (await conn.execute(by_key)).all()
            )
        for key, setting in wanted.items():
            row = existing.get(key)
            if row is None:
                await conn.execute(
                    WATCHES.insert().values(
                        _new_watch(
                            *key,
                            "config",
                            now,
                            label=setting.label,
                            interval_seconds=setting.interval_seconds,
                            owners=setting.owners,
                        )
                    )
                )
                added += 1
            elif (
                row.label != setting.label
                or row.source != "config"
                or not row.active
                or row.interval_seconds != setting.interval_seconds
                or tuple(row.owners or ()) != setting.owners
            ):
                values: dict[str, object] = {
                    "label": setting.label,
                    "source": "config",
                    "interval_seconds": setting.interval_seconds,
                    "owners": list(setting.owners) or None,
                }
                if not row.active:
                    values.update(active=True, next_poll_at=now)
                await conn.execute(update(Watch).where(Watch.id == row.id).values(**values))
                updated += 1
        gone = [
            row.id
            for key, row in existing.items()
            if row.source == "config" and row.active and key not in wanted
        ]
        if gone:
            await conn.execute(update(Watch).where(Watch.id.in_(gone)).values(active=False))
    return WatchSync(added, updated, len(gone))


async def newest_status(
    engine: AsyncEngine, account_service_id: int, image_version_id: int
) -> JobStatus | None:
    """The last known status of one image version: what its Slack live message should show."""
    status_columns = [c for c in JOB_STATUS.c if c.name != "watch_id"]
    stmt = (
        select(*status_columns)
        .join(Watch, JobStatusRow.watch_id == Watch.id)
        .where(
            Watch.account_service_id == account_service_id,
            Watch.image_version_id == image_version_id,
        )
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else status_from_row(image_version_id, row)
