"""Slack incoming webhooks through slack-sdk's AsyncWebhookClient against the fake's endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.events import STATE_CHANGED
from notifier.core.status import FAILED, RUNNING
from notifier.core.subscriptions import (
    SlackWebhookSubscription,
    Subscription,
)
from notifier.notify.pacing import ChannelPacer
from notifier.notify.render import render_live_message
from notifier.notify.slack_webhook import SlackWebhookSink
from notifier.testing.fake_slack import HOOK_METHOD, FakeSlack
from tests.conftest import make_event, make_status

RUNNING_EVENT = make_event(make_status(RUNNING, 40))
FAILED_EVENT = make_event(
    make_status(FAILED, 80, error="Image locked by <!channel>", failed_count=1),
    make_status(RUNNING, 40),
    type=STATE_CHANGED,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


@pytest.fixture
def sink(session: aiohttp.ClientSession) -> SlackWebhookSink:
    return SlackWebhookSink(session, timeout_seconds=5, pacer=ChannelPacer(0))


def _hook(fake: FakeSlack) -> Subscription:
    return SlackWebhookSubscription(
        id=7, name="hook", host="http://127.0.0.1", url=fake.webhook_url("T0/B0/sekrit")
    )


async def test_each_event_is_one_post_with_the_live_message_layout(
    sink: SlackWebhookSink, fake: FakeSlack
) -> None:
    await sink.deliver(RUNNING_EVENT, _hook(fake))
    await sink.deliver(FAILED_EVENT, _hook(fake))

    running, failed = fake.hook_posts
    assert running["path"] == "T0/B0/sekrit"
    assert running["blocks"] == render_live_message(RUNNING_EVENT).blocks
    assert failed["text"].startswith("EU fleet, build 1.4.2: Failed 80%")
    assert "Image locked by &lt;!channel&gt;" in failed["blocks"][2]["text"]["text"]
    assert fake.calls == []  # no Web API call: a hook cannot update or thread


async def test_rate_limited_hook_is_retried_after_slacks_retry_after(
    sink: SlackWebhookSink, fake: FakeSlack
) -> None:
    fake.fail_next(HOOK_METHOD, "rate_limited", status=429, retry_after=30)

    with pytest.raises(DeliveryFailed) as caught:
        await sink.deliver(RUNNING_EVENT, _hook(fake))

    assert not caught.value.permanent
    assert caught.value.retry_after == 30


@pytest.mark.parametrize(("code", "status"), [("no_service", 404), ("invalid_token", 403)])
async def test_revoked_hook_is_permanent_and_never_quotes_its_url(
    sink: SlackWebhookSink, fake: FakeSlack, code: str, status: int
) -> None:
    fake.fail_next(HOOK_METHOD, code, status=status)

    with pytest.raises(DeliveryFailed) as caught:
        await sink.deliver(RUNNING_EVENT, _hook(fake))

    assert caught.value.permanent
    assert caught.value.reason.startswith(f"Slack says {code}: the incoming-webhook URL of 'hook'")
    assert "sekrit" not in caught.value.reason


async def test_slack_server_error_on_hook_is_transient(
    sink: SlackWebhookSink, fake: FakeSlack
) -> None:
    fake.fail_next(HOOK_METHOD, "internal_error", status=503)

    with pytest.raises(DeliveryFailed) as caught:
        await sink.deliver(RUNNING_EVENT, _hook(fake))

    assert not caught.value.permanent
