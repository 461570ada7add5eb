"""Subscriptions: synced from the configuration file, read by the poller and the dispatcher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.events import STATE_CHANGED
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    SlackWebhookSubscription,
    Subscription,
    SubscriptionKind,
    WebhookSubscription,
)
from notifier.store.engine import is_postgres
from notifier.store.inserts import insert_new
from notifier.store.tables import SUBSCRIPTIONS, DeliveryRow, SubscriptionRow

CONFIG_SECRET_REF = "config"  # noqa: S105 - names where the secret is, not a secret


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: int
    name: str
    kind: str
    target: str
    filters: dict[str, Any]
    active: bool
    source: str
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigSubscription:
    """A ``[[subscription]]`` entry of the configuration file, as the sync needs it: where it
    sends and what it wants, and only whether it has secrets (they are never stored)."""

    name: str
    kind: SubscriptionKind
    target: str
    """The Slack channel id, the webhook URL, or for ``slack_webhook`` the hook's host only."""
    events: tuple[str, ...] = (STATE_CHANGED,)
    states: tuple[str, ...] = ()
    account_service_ids: tuple[int, ...] = ()
    image_version_ids: tuple[int, ...] = ()
    label_glob: str | None = None
    has_secret: bool = False


def _filters(setting: ConfigSubscription) -> dict[str, Any]:
    return {
        "events": list(setting.events),
        "states": list(setting.states),
        "account_service_ids": list(setting.account_service_ids),
        "image_version_ids": list(setting.image_version_ids),
        "label_glob": setting.label_glob,
    }


async def sync_config_subscriptions(
    engine: AsyncEngine, subscriptions: Sequence[ConfigSubscription], now: datetime
) -> None:
    """Make the config-sourced subscriptions match the file, in one transaction.

    A subscription gone from the file is deactivated, not deleted, so its delivery history stays.
    """
    wanted = {s.name: s for s in subscriptions}
    async with engine.begin() as conn:
        existing = {
            row.name: row
            for row in (
                await conn.execute(
                    select(
                        SubscriptionRow.id,
                        SubscriptionRow.name,
                        SubscriptionRow.source,
                        SubscriptionRow.disabled_reason,
                    )
                )
            ).all()
        }
        for name, setting in wanted.items():
            values = {
                "kind": setting.kind,
                "target": setting.target,
                "secret_ref": CONFIG_SECRET_REF if setting.has_secret else None,
                "filters": _filters(setting),
                "active": True,
                "source": "config",
            }
            row = existing.get(name)
            if row is None:
                await conn.execute(
                    SUBSCRIPTIONS.insert().values(name=name, created_at=now, **values)
                )
            else:
                # A receiver that said "gone" stays disabled until `subscription enable`.
                values["active"] = row.disabled_reason is None
                await conn.execute(
                    update(SubscriptionRow).where(SubscriptionRow.id == row.id).values(**values)
                )
        gone = [
            row.id
            for name, row in existing.items()
            if row.source == "config" and name not in wanted
        ]
        if gone:
            await conn.execute(
                update(SubscriptionRow).where(SubscriptionRow.id.in_(gone)).values(active=False)
            )


class DuplicateSubscription(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a subscription named {name!r} already exists")


async def add_subscription(
    engine: AsyncEngine,
    *,
    name: str,
    kind: str,
    target: str,
    filters: Mapping[str, Any],
    source: str,
    now: datetime,
) -> int:
    """A subscription added at run time; it lives in the database alone and has no secret."""
    row = SUBSCRIPTIONS.insert().values(
        name=name,
        kind=kind,
        target=target,
        secret_ref=None,
        filters=dict(filters),
        active=True,
        source=source,
        created_at=now,
    )
    return await insert_new(engine, row, lambda: DuplicateSubscription(name))


async def remove_subscription(engine: AsyncEngine, subscription_id: int) -> bool:
    """Delete a subscription and its deliveries; False when there is no such subscription."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(SubscriptionRow).where(SubscriptionRow.id == subscription_id)
        )
    return result.rowcount > 0


async def list_subscriptions(
    engine: AsyncEngine, subscription_id: int | None = None
) -> list[SubscriptionView]:
    stmt = select(SubscriptionRow).order_by(SubscriptionRow.name)
    if subscription_id is not None:
        stmt = stmt.where(SubscriptionRow.id == subscription_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        SubscriptionView(
            id=row.id,
            name=row.name,
            kind=row.kind,
            target=row.target,
            filters=row.filters,
            active=row.active,
            source=row.source,
            disabled_reason=row.disabled_reason,
        )
        for row in rows
    ]


async def disable_subscription(engine: AsyncEngine, subscription_id: int, reason: str) -> None:
    """Stop sending to a subscription whose receiver is gone; its pending deliveries go dead.

    They stay in the outbox with the reason, so that after ``enable`` an operator can send them
    with ``deliveries retry --all-dead``.
    """
    async with engine.begin() as conn:
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == subscription_id)
            .values(active=False, disabled_reason=reason)
        )
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.subscription_id == subscription_id, DeliveryRow.status == "pending")
            .values(status="dead", last_error=f"subscription disabled: {reason}")
        )


class NotDisabled(Exception):
    """``enable`` of a subscription that does not exist or was not disabled."""


async def enable_subscription(engine: AsyncEngine, name: str) -> None:
    """Undo :func:`disable_subscription`; raises :class:`NotDisabled` with the reason why not."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(SubscriptionRow.id, SubscriptionRow.disabled_reason).where(
                    SubscriptionRow.name == name
                )
            )
        ).first()
        if row is None:
            raise NotDisabled(f"no subscription is named {name!r}")
        if row.disabled_reason is None:
            raise NotDisabled(f"subscription {name!r} is not disabled")
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == row.id)
            .values(active=True, disabled_reason=None)
        )


async def load_active_subscriptions(
    engine: AsyncEngine,
    config_secrets: Mapping[str, str | tuple[str, ...]],
    config_templates: Mapping[str, str] | None = None,
) -> list[Subscription]:
    """Active subscriptions with their secrets resolved (secrets never live in the database).

    ``config_secrets`` gives a subscription's secret, or all its secrets during a rotation;
    ``config_templates`` its body template, taken from the file like the secrets.
    """
    templates = config_templates or {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SubscriptionRow)
                .where(SubscriptionRow.active.is_(True))
                .order_by(SubscriptionRow.id)
            )
        ).all()
    subscriptions: list[Subscription] = []
    for row in rows:
        found = config_secrets.get(row.name) if row.secret_ref == CONFIG_SECRET_REF else None
        # Each secret once, in the file's order, and no empty one.
        secrets = tuple(
            dict.fromkeys(s for s in ((found,) if isinstance(found, str) else found or ()) if s)
        )
        common: dict[str, Any] = {
            "id": row.id,
            "name": row.name,
            "event_types": frozenset(row.filters.get("events", ())),
            "states": frozenset(row.filters.get("states", ())),
            "account_service_ids": frozenset(row.filters.get("account_service_ids", ())),
            "image_version_ids": frozenset(row.filters.get("image_version_ids", ())),
            "label_glob": row.filters.get("label_glob"),
        }
        if row.kind == "slack_channel":
            subscriptions.append(SlackChannelSubscription(channel=row.target, **common))
        elif row.kind == "slack_webhook":
            url = secrets[0] if secrets else None
            subscriptions.append(SlackWebhookSubscription(host=row.target, url=url, **common))
        else:
            subscriptions.append(
                WebhookSubscription(
                    url=row.target,
                    signing_secrets=secrets,
                    template=templates.get(row.name),
                    **common,
                )
            )
    return subscriptions


def channel_subscription_name(channel: str) -> str:
    """The one subscription a Slack channel gets from ``/imagewatch`` commands."""
    return f"slack:{channel}"


async def follow_in_channel(
    engine: AsyncEngine, channel: str, image_version_id: int, now: datetime
) -> bool:
    """Make ``channel`` receive ``image_version_id``'s state changes; False if it already did."""
    try:
        return await _follow(engine, channel, image_version_id, now)
    except IntegrityError:
        # Two commands in one new channel at once: the other inserted the row, so update it.
        return await _follow(engine, channel, image_version_id, now)


async def _follow(engine: AsyncEngine, channel: str, image_version_id: int, now: datetime) -> bool:
    async with engine.begin() as conn:
        row = (await conn.execute(_locked_channel_row(engine, channel))).first()
        if row is None:
            name = channel_subscription_name(channel)
            taken = await conn.scalar(
                select(SubscriptionRow.id).where(SubscriptionRow.name == name)
            )
            if taken is not None:
                # Someone else's subscription has the name: ours gets another, and theirs
                # is never mistaken for the channel's.
                name = f"{name}#{channel_suffix(taken)}"
            await conn.execute(
                SUBSCRIPTIONS.insert().values(
                    name=name,
                    kind="slack_channel",
                    target=channel,
                    secret_ref=None,
                    filters={"events": [STATE_CHANGED], "image_version_ids": [image_version_id]},
                    active=True,
                    source="slack",
                    created_at=now,
                )
            )
            return True
        ids = list(row.filters.get("image_version_ids", []))
        if row.active and image_version_id in ids:
            return False
        if not row.active:
            ids = []  # an inactive subscription's old list is not what the channel asks for now
        filters = {**row.filters, "image_version_ids": [*ids, image_version_id]}
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == row.id)
            .values(filters=filters, active=True)
        )
        return True


async def unfollow_in_channel(engine: AsyncEngine, channel: str, image_version_id: int) -> bool:
    """Stop sending ``image_version_id`` to ``channel``; False if it was not followed there.

    The last one removed deactivates the subscription: an empty filter would mean "everything".
    """
    async with engine.begin() as conn:
        row = (await conn.execute(_locked_channel_row(engine, channel))).first()
        if row is None or not row.active:
            return False
        ids = list(row.filters.get("image_version_ids", []))
        if image_version_id not in ids:
            return False
        ids.remove(image_version_id)
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == row.id)
            .values(filters={**row.filters, "image_version_ids": ids}, active=bool(ids))
        )
        return True


async def followed_in_channel(engine: AsyncEngine, channel: str) -> list[int]:
    """Image version ids the channel follows through ``/imagewatch``, in the order added."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(SubscriptionRow.filters, SubscriptionRow.active).where(
                    *_channel_row(channel)
                )
            )
        ).first()
    if row is None or not row.active:
        return []
    return [int(i) for i in row.filters.get("image_version_ids", [])]


async def followed_by_other_channels(
    engine: AsyncEngine, channel: str, image_version_id: int
) -> bool:
    """Whether another channel's ``/imagewatch`` subscription still wants this image version."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SubscriptionRow.filters).where(
                    SubscriptionRow.source == "slack",
                    SubscriptionRow.kind == "slack_channel",
                    SubscriptionRow.active.is_(True),
                    SubscriptionRow.target != channel,
                )
            )
        ).all()
    return any(image_version_id in row.filters.get("image_version_ids", []) for row in rows)


def _channel_row(channel: str) -> tuple[ColumnElement[bool], ...]:
    """The subscription ``/imagewatch`` keeps for ``channel``: found by what it is, never by its
    name, which an API caller could have taken first."""
    return (
        SubscriptionRow.source == "slack",
        SubscriptionRow.kind == "slack_channel",
        SubscriptionRow.target == channel,
    )


def channel_suffix(taken_id: int) -> str:
    """What tells the channel's subscription from another holding its usual name."""
    return f"imagewatch-{taken_id}"


def _locked_channel_row(engine: AsyncEngine, channel: str) -> Select[Any]:
    stmt = (
        select(SubscriptionRow.id, SubscriptionRow.filters, SubscriptionRow.active)
        .where(*_channel_row(channel))
        .order_by(SubscriptionRow.id)
        .limit(1)
    )
    return stmt.with_for_update() if is_postgres(engine) else stmt
