"""Subscriptions: synced from the configuration file, read by the poller and the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.digest import DigestProblem, DigestSchedule, parse_digest
from notifier.core.events import STATE_CHANGED
from notifier.core.mentions import DEFAULT_MENTION_ON
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    SlackWebhookSubscription,
    Subscription,
    SubscriptionKind,
    WebhookSubscription,
)
from notifier.core.webhook_secrets import signing_secrets
from notifier.store.codec import from_attributes
from notifier.store.inserts import insert_new
from notifier.store.tables import SUBSCRIPTIONS, DeliveryRow, SubscriptionRow

log = logging.getLogger(__name__)

CONFIG_SECRET_REF = "config"  # noqa: S105 - names where the secret is, not a secret
DATABASE_SECRET_REF = "database"  # noqa: S105 - the same: an API webhook's, in its row


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
    signed: bool = False
    """A webhook whose requests carry a signature; never the secret itself."""
    preset: str | None = None
    custom_template: bool = False
    """Whether an API webhook renders its own body template (its source is not listed)."""
    previous_secret_until: datetime | None = None
    """During a rotation's overlap: until when the replaced secret still signs."""
    mention_on: tuple[str, ...] = DEFAULT_MENTION_ON
    mention: tuple[str, ...] = ()
    digest: str | None = None


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
    mention_on: tuple[str, ...] = DEFAULT_MENTION_ON
    mention: tuple[str, ...] = ()
    digest: str | None = None
    """``HH:MM Area/City``, checked by :func:`notifier.core.digest.parse_digest`."""


def _filters(setting: ConfigSubscription) -> dict[str, Any]:
    return {
        "events": list(setting.events),
        "states": list(setting.states),
        "account_service_ids": list(setting.account_service_ids),
        "image_version_ids": list(setting.image_version_ids),
        "label_glob": setting.label_glob,
    }


def _people(
    mention_on: Sequence[str], mention: Sequence[str], digest: str | None
) -> dict[str, Any]:
    """The mention and digest columns; the default ``mention_on`` is stored as NULL."""
    return {
        "mention_on": None if tuple(mention_on) == DEFAULT_MENTION_ON else list(mention_on),
        "mention": list(mention) or None,
        "digest": digest,
    }


def _mention_on(row: Any) -> tuple[str, ...]:
    return DEFAULT_MENTION_ON if row.mention_on is None else tuple(row.mention_on)


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
                **_people(setting.mention_on, setting.mention, setting.digest),
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
    secret: str | None = None,
    preset: str | None = None,
    template: str | None = None,
    mention_on: Sequence[str] = DEFAULT_MENTION_ON,
    mention: Sequence[str] = (),
    digest: str | None = None,
) -> int:
    """A subscription added at run time; it lives in the database alone, and so does a
    webhook's signing ``secret`` (the caller shows it once, and nothing reads it back out)."""
    row = SUBSCRIPTIONS.insert().values(
        name=name,
        kind=kind,
        target=target,
        secret_ref=None if secret is None else DATABASE_SECRET_REF,
        signing_secret=secret,
        preset=preset,
        template=template,
        filters=dict(filters),
        active=True,
        source=source,
        created_at=now,
        **_people(mention_on, mention, digest),
    )
    return await insert_new(engine, row, lambda: DuplicateSubscription(name))


async def remove_subscription(engine: AsyncEngine, subscription_id: int) -> bool:
    """Delete a subscription and its deliveries; False when there is no such subscription."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(SubscriptionRow).where(SubscriptionRow.id == subscription_id)
        )
    return result.rowcount > 0


class CannotRotate(Exception):
    """``rotate-secret`` of a subscription that has no secret of ours to rotate."""

    def __init__(self, message: str, *, from_config: bool = False) -> None:
        super().__init__(message)
        self.from_config = from_config


@dataclass(frozen=True, slots=True)
class Rotated:
    name: str
    previous_secret_until: datetime | None
    """Until when the replaced secret still signs; None when there was none (it was unsigned)."""


async def rotate_secret(
    engine: AsyncEngine,
    subscription_id: int,
    secret: str,
    now: datetime,
    overlap: timedelta,
) -> Rotated | None:
    """Make ``secret`` an API webhook's signing secret; None when there is no such subscription.

    The replaced secret keeps signing beside it for ``overlap``; a second rotation inside the
    overlap drops the oldest (one previous secret is kept, as receivers hold at most two). An
    unsigned webhook starts signing at once. A subscription of the configuration file keeps
    its secrets in the file: :class:`CannotRotate`.
    """
    # FOR UPDATE on PostgreSQL; SQLite renders none, its BEGIN IMMEDIATE serialises already.
    stmt = (
        select(
            SubscriptionRow.name,
            SubscriptionRow.kind,
            SubscriptionRow.source,
            SubscriptionRow.signing_secret,
        )
        .where(SubscriptionRow.id == subscription_id)
        .with_for_update()
    )
    async with engine.begin() as conn:
        row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        if row.source == "config":
            raise CannotRotate(
                f"subscription {row.name!r} comes from the configuration file, which holds its "
                "secret: rotate webhook_secret there (list the old one in webhook_secrets "
                "for the overlap)",
                from_config=True,
            )
        if row.kind != "webhook":
            raise CannotRotate(
                f"subscription {row.name!r} is a {row.kind}: only webhooks are signed"
            )
        old = row.signing_secret
        until = now + overlap if old is not None and overlap > timedelta(0) else None
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == subscription_id)
            .values(
                signing_secret=secret,
                secret_ref=DATABASE_SECRET_REF,
                previous_secret=old if until is not None else None,
                previous_secret_until=until,
            )
        )
    return Rotated(row.name, until)


async def forget_replaced_secrets(engine: AsyncEngine, now: datetime) -> int:
    """Clear the secrets whose overlap has ended: no longer used to sign, so no longer kept."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(SubscriptionRow)
            .where(
                SubscriptionRow.previous_secret_until.is_not(None),
                SubscriptionRow.previous_secret_until <= now,
            )
            .values(previous_secret=None, previous_secret_until=None)
        )
    return result.rowcount


def _signed(row: Any) -> bool:
    return bool(row.kind == "webhook" and row.secret_ref is not None)


async def list_subscriptions(
    engine: AsyncEngine, subscription_id: int | None = None
) -> list[SubscriptionView]:
    stmt = select(SubscriptionRow).order_by(SubscriptionRow.name)
    if subscription_id is not None:
        stmt = stmt.where(SubscriptionRow.id == subscription_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        from_attributes(
            SubscriptionView,
            row,
            signed=_signed(row),
            custom_template=row.template is not None,
            mention_on=_mention_on(row),
            mention=tuple(row.mention or ()),
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
    *,
    presets: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[Subscription]:
    """Active subscriptions with their secrets resolved.

    ``config_secrets`` gives a configuration-file subscription's secret, or all its secrets
    during a rotation; ``config_templates`` its body template, taken from the file like the
    secrets. A webhook added through the API signs with the secret in its row (and until the
    overlap ends at ``now``, the replaced one too) and renders its preset (source from
    ``presets``) or its own template.
    """
    templates = config_templates or {}
    known_presets = presets or {}
    when = utc_now() if now is None else now
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
        found: str | tuple[str, ...] | None = None
        if row.secret_ref == CONFIG_SECRET_REF:
            found = config_secrets.get(row.name)
        elif row.secret_ref == DATABASE_SECRET_REF:
            found = signing_secrets(
                row.signing_secret, row.previous_secret, row.previous_secret_until, when
            )
        # Each secret once, in the file's (or the rotation's) order, and no empty one.
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
            "mention_on": frozenset(_mention_on(row)),
            "mention": tuple(row.mention or ()),
            "digest": _schedule(row.digest),
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
                    template=(
                        templates.get(row.name)
                        if row.source == "config"
                        else known_presets.get(row.preset, row.template)
                        if row.preset is not None
                        else row.template
                    ),
                    **common,
                )
            )
    return subscriptions


def _schedule(text: str | None) -> DigestSchedule | None:
    """The stored digest time; one the zone database no longer knows is logged and skipped."""
    if text is None:
        return None
    try:
        return parse_digest(text)
    except DigestProblem as exc:
        log.warning("a subscription's digest is not sent: %s", exc)
        return None


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
        row = (await conn.execute(_locked_channel_row(channel))).first()
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
        row = (await conn.execute(_locked_channel_row(channel))).first()
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


def _locked_channel_row(channel: str) -> Select[Any]:
    return (
        select(SubscriptionRow.id, SubscriptionRow.filters, SubscriptionRow.active)
        .where(*_channel_row(channel))
        .order_by(SubscriptionRow.id)
        .limit(1)
        .with_for_update()
    )
