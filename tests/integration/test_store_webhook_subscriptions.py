"""Webhook subscriptions through the store: filters kept in the database, secrets and templates
taken from the configuration file, never stored."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import SubscriptionSettings
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    SlackWebhookSubscription,
    WebhookSubscription,
)
from notifier.notify.presets import PRESETS
from notifier.store.subscriptions import (
    add_subscription,
    forget_replaced_secrets,
    list_subscriptions,
    load_active_subscriptions,
    rotate_secret,
    sync_config_subscriptions,
)
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

    assert isinstance(loaded, WebhookSubscription)
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

    assert isinstance(loaded, WebhookSubscription)
    assert loaded.signing_secrets == (OLD,)
    assert loaded.template is None
    assert loaded.label_glob is None


async def test_each_kind_loads_as_its_own_type_with_its_destination(engine: AsyncEngine) -> None:
    hook_url = "https://hooks.slack.com/services/T0/B0/s3cret"
    file = [
        SubscriptionSettings(name="builds", slack_channel="C0BUILDS"),
        SubscriptionSettings(name="hook", slack_webhook_url=SecretStr(hook_url)),
        SubscriptionSettings(name="chatops", webhook_url="https://chatops.example/h"),
    ]
    await sync_config_subscriptions(engine, [s.entry() for s in file], T0)

    channel, slack_hook, webhook = await load_active_subscriptions(engine, {"hook": hook_url})

    wanted = frozenset({"imageversion.state_changed"})
    assert channel == SlackChannelSubscription(
        id=channel.id, name="builds", event_types=wanted, channel="C0BUILDS"
    )
    assert slack_hook == SlackWebhookSubscription(
        id=slack_hook.id,
        name="hook",
        event_types=wanted,
        host="https://hooks.slack.com",
        url=hook_url,
    )
    assert "s3cret" not in repr(slack_hook)
    assert webhook == WebhookSubscription(
        id=webhook.id, name="chatops", event_types=wanted, url="https://chatops.example/h"
    )
    async with engine.connect() as conn:
        assert "s3cret" not in str((await conn.execute(select(SubscriptionRow))).all())


async def test_an_api_webhook_signs_with_both_secrets_during_the_overlap_then_the_new_one(
    engine: AsyncEngine,
) -> None:
    sub_id = await add_subscription(
        engine,
        name="api-hook",
        kind="webhook",
        target="https://x.example/h",
        filters={},
        source="api",
        now=T0,
        secret=OLD,
        preset="teams",
    )
    [before] = await load_active_subscriptions(engine, {}, presets=PRESETS, now=T0)
    assert isinstance(before, WebhookSubscription)
    assert (before.signing_secrets, before.template) == ((OLD,), PRESETS["teams"])

    rotated = await rotate_secret(engine, sub_id, NEW, T0, timedelta(hours=1))
    assert rotated is not None
    assert rotated.previous_secret_until == T0 + timedelta(hours=1)
    for at, expected in [
        (T0 + timedelta(minutes=59), (NEW, OLD)),
        (T0 + timedelta(hours=1), (NEW,)),
    ]:
        [loaded] = await load_active_subscriptions(engine, {}, now=at)
        assert isinstance(loaded, WebhookSubscription)
        assert loaded.signing_secrets == expected, at

    assert await forget_replaced_secrets(engine, T0 + timedelta(minutes=59)) == 0
    assert await forget_replaced_secrets(engine, T0 + timedelta(hours=1)) == 1
    async with engine.connect() as conn:
        stored = str((await conn.execute(select(SubscriptionRow))).all())
    assert OLD not in stored
    [view] = await list_subscriptions(engine)
    assert (view.signed, view.preset, view.previous_secret_until) == (True, "teams", None)
