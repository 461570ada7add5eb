"""Webhook subscriptions through the store: filters kept in the database, secrets and templates
taken from the configuration file, never stored."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.notify.presets import PRESETS
from notifier.store.subscriptions import load_active_subscriptions, sync_config_subscriptions
from notifier.store.tables import SubscriptionRow
from tests.conftest import T0

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


async def test_rotation_secrets_template_and_label_glob_reach_the_dispatcher(
    engine: AsyncEngine,
) -> None:
    setting = SubscriptionSettings(
        name="discord",
        webhook_url="https://discord.example/api/webhooks/1/t",
        webhook_secret=SecretStr(OLD),
        webhook_secrets=[SecretStr(NEW)],
        preset="discord",
        label_glob="EU*",
        events=["imageversion.failed"],
    )
    await sync_config_subscriptions(engine, [setting.entry()], T0)

    [loaded] = await load_active_subscriptions(
        engine,
        {"discord": setting.signing_secrets},
        {"discord": setting.body_template or ""},
    )

    assert loaded.signing_secrets == (OLD, NEW)
    assert loaded.template == PRESETS["discord"]
    assert loaded.label_glob == "EU*"
    assert loaded.event_types == frozenset({"imageversion.failed"})
    async with engine.connect() as conn:
        stored = str((await conn.execute(select(SubscriptionRow))).all())
    assert OLD not in stored
    assert NEW not in stored


async def test_a_single_secret_given_as_a_string_still_signs(engine: AsyncEngine) -> None:
    setting = SubscriptionSettings(
        name="hook", webhook_url="https://x.example/h", webhook_secret=SecretStr(OLD)
    )
    await sync_config_subscriptions(engine, [setting.entry()], T0)

    [loaded] = await load_active_subscriptions(engine, {"hook": OLD})

    assert loaded.signing_secrets == (OLD,)
    assert loaded.template is None
    assert loaded.label_glob is None
