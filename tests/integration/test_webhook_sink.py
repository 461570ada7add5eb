"""WebhookSink over real HTTP against a local receiver: bytes, signature and failure handling."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest

from notifier import __version__
from notifier.core.clock import utc_now
from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.events import FAILED_EVENT, Event
from notifier.core.status import FAILED
from notifier.core.subscriptions import SlackChannelSubscription, Subscription, WebhookSubscription
from notifier.notify.payload import encode_payload, webhook_payload
from notifier.notify.presets import PRESETS
from notifier.notify.webhook import BODY_EXCERPT_CHARS, WebhookSink
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import make_event
from tests.support.samples import DETECTED, example_status

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
SENT_AT = utc_now().replace(microsecond=0)


@pytest.fixture(autouse=True)
def _sent_just_now() -> None:
    """Receivers reject timestamps over 5 minutes old, and the whole suite runs longer than that:
    "now" is each test's now, not the moment this module was imported."""
    global SENT_AT
    SENT_AT = utc_now().replace(microsecond=0)


def _event() -> Event:
    running = example_status(created=None, started=None)
    failed = replace(
        running,
        state_id=FAILED,
        state="Failed",
        error="Image locked by diffid 42 — ünïcode",
        failed_count=1,
        updated=datetime(2026, 11, 28, 17, 4, 1, tzinfo=UTC),
    )
    return make_event(
        failed,
        running,
        type=FAILED_EVENT,
        event_id="evt_01JDQ3W8Z6K5X0000000000000",
        occurred_at=DETECTED,
    )


def _subscription(url: str, secret: str | None = SECRET) -> WebhookSubscription:
    secrets = (secret,) if secret is not None else ()
    return WebhookSubscription(id=7, name="chatops", url=url, signing_secrets=secrets)


@pytest.fixture
def sink(session: aiohttp.ClientSession) -> WebhookSink:
    return WebhookSink(session, timeout_seconds=2.0, clock=lambda: SENT_AT)


async def _timed_out(
    session: aiohttp.ClientSession, receiver: WebhookReceiver, limit: float, delay: float
) -> DeliveryFailed:
    """What a sink with a ``limit`` s timeout says of a receiver answering after ``delay`` s."""
    receiver.respond_next(204, delay=delay)
    sink = WebhookSink(session, timeout_seconds=limit)
    return await _failure(sink, _subscription(receiver.url))


async def _failure(sink: WebhookSink, subscription: Subscription) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as caught:
        await sink.deliver(_event(), subscription)
    return caught.value


async def test_exact_body_and_standard_webhook_headers_arrive(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    await sink.deliver(_event(), _subscription(receiver.url))

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.body == encode_payload(webhook_payload(_event()))
    assert request.json == webhook_payload(_event())
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "evt_01JDQ3W8Z6K5X0000000000000"
    assert request.headers["webhook-timestamp"] == str(int(SENT_AT.timestamp()))
    assert request.headers["user-agent"] == f"clanforge-notifier/{__version__}"
    assert request.headers["webhook-signature"].startswith("v1,")


async def test_signature_verifies_with_the_subscription_secret_only(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    await sink.deliver(_event(), _subscription(receiver.url))

    assert receiver.verified_payloads(SECRET) == [webhook_payload(_event())]
    other = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
    assert receiver.verified_payloads(other) == []


async def test_unsigned_subscription_sends_no_signature_header(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    await sink.deliver(_event(), _subscription(receiver.url, secret=None))

    [request] = receiver.requests
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "evt_01JDQ3W8Z6K5X0000000000000"


async def test_resending_the_same_event_keeps_the_webhook_id(
    session: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    times = iter([SENT_AT, SENT_AT.replace(second=(SENT_AT.second + 5) % 60)])
    sink = WebhookSink(session, timeout_seconds=2.0, clock=lambda: next(times))

    await sink.deliver(_event(), _subscription(receiver.url))
    await sink.deliver(_event(), _subscription(receiver.url))

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == _event().id
    assert first.body == second.body
    assert len(receiver.verified_payloads(SECRET)) == 2


async def test_any_2xx_is_success(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.respond_next(200, body=b'{"ok": true}')
    receiver.respond_next(202)

    await sink.deliver(_event(), _subscription(receiver.url))
    await sink.deliver(_event(), _subscription(receiver.url))

    assert len(receiver.requests) == 2


async def test_server_error_is_transient(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.respond_next(500, body=b"boom")

    failure = await _failure(sink, _subscription(receiver.url))

    assert not failure.permanent
    assert failure.retry_after is None
    assert "500" in failure.reason


async def test_too_many_requests_is_transient_with_retry_after_seconds(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    receiver.respond_next(429, headers={"Retry-After": "7"})

    failure = await _failure(sink, _subscription(receiver.url))

    assert not failure.permanent
    assert failure.retry_after == 7


async def test_retry_after_as_http_date_counts_from_the_clock(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    later = SENT_AT.timestamp() + 90
    http_date = datetime.fromtimestamp(later, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.respond_next(503, headers={"Retry-After": http_date})

    failure = await _failure(sink, _subscription(receiver.url))

    assert not failure.permanent
    assert failure.retry_after == 90


async def test_gone_is_permanent(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.respond_next(410)

    failure = await _failure(sink, _subscription(receiver.url))

    assert failure.permanent
    assert "endpoint answered 410 Gone" in failure.reason


async def test_client_error_is_permanent_and_quotes_the_start_of_the_body(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    receiver.respond_next(400, body=b'{"error": "unknown field \\"data\\""}' + b"x" * 1000)

    failure = await _failure(sink, _subscription(receiver.url))

    assert failure.permanent
    assert "400" in failure.reason
    assert 'unknown field \\"data\\"' in failure.reason
    assert "x" * 200 not in failure.reason


async def test_a_subscription_of_another_kind_is_refused_without_a_request(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    channel = SlackChannelSubscription(id=8, name="builds", channel="C0BUILDS")

    failure = await _failure(sink, channel)

    assert failure.permanent
    assert "'builds' is not a webhook" in failure.reason
    assert receiver.requests == []


async def test_redirect_is_not_followed_and_is_permanent(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    receiver.respond_next(302, headers={"Location": "https://elsewhere.example/hook?token=s3cret"})

    failure = await _failure(sink, _subscription(receiver.url))

    assert len(receiver.requests) == 1
    assert failure.permanent
    assert "302" in failure.reason
    assert "https://elsewhere.example" in failure.reason
    assert "s3cret" not in failure.reason


@pytest.mark.parametrize(
    "shape",
    ["http://127.0.0.1:{port}/hook?token=s3cret", "http://bot:s3cret@127.0.0.1:{port}/hook"],
)
async def test_unreachable_receiver_is_transient_and_reason_hides_query_and_user_info(
    sink: WebhookSink, shape: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = shape.format(port=port)

    failure = await _failure(sink, _subscription(url))

    assert not failure.permanent
    assert f"127.0.0.1:{port}" in failure.reason
    assert "s3cret" not in failure.reason


async def test_receiver_slower_than_the_timeout_is_transient(
    session: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    failure = await _timed_out(session, receiver, limit=0.2, delay=5.0)

    assert not failure.permanent
    assert "0.2 s" in failure.reason


NEW_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


async def test_during_rotation_receivers_on_the_old_or_new_secret_both_verify(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    subscription = replace(_subscription(receiver.url), signing_secrets=(SECRET, NEW_SECRET))

    await sink.deliver(_event(), subscription)

    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    expected = json.loads(encode_payload(webhook_payload(_event())))
    assert receiver.verified_payloads(SECRET) == [expected]
    assert receiver.verified_payloads(NEW_SECRET) == [expected]


async def test_templated_body_is_sent_and_signed_as_rendered(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    subscription = replace(_subscription(receiver.url), template=PRESETS["discord"])

    await sink.deliver(_event(), subscription)

    [body] = receiver.verified_payloads(SECRET)
    assert body["content"] == "EU fleet, build 1.4.2: Running → Failed (80%)"
    assert (
        body["embeds"][0]["fields"][3]["value"] == "```\nImage locked by diffid 42 — ünïcode\n```"
    )


async def test_huge_error_body_is_read_only_up_to_the_cap(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    huge = 1024 * 1024 * 1024
    receiver.respond_next(400, stream_bytes=huge)

    failure = await _failure(sink, _subscription(receiver.url))

    assert failure.permanent
    assert failure.reason.startswith("webhook http://127.0.0.1:")
    assert "answered 400: " + "x" * BODY_EXCERPT_CHARS in failure.reason
    # We hung up after the cap: the receiver could write little more than socket buffers hold.
    assert receiver.streamed_bytes < huge // 16


async def test_huge_success_body_is_not_read_and_delivery_succeeds(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    huge = 1024 * 1024 * 1024
    receiver.respond_next(200, stream_bytes=huge)

    await sink.deliver(_event(), _subscription(receiver.url))

    assert receiver.streamed_bytes < huge // 16


async def test_receiver_that_never_answers_frees_the_slot_at_the_timeout(
    session: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    failure = await _timed_out(session, receiver, limit=0.3, delay=3600)

    assert not failure.permanent
    assert failure.reason.endswith("did not answer within 0.3 s")


async def test_receiver_trickling_an_error_body_cannot_hold_the_slot_past_the_timeout(
    session: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    sink = WebhookSink(session, timeout_seconds=0.3)
    # 100 bytes every 50 ms: the connection never goes quiet and the cap is minutes away.
    receiver.respond_next(400, stream_bytes=1024 * 1024, chunk_delay=0.05, chunk_bytes=100)

    failure = await _failure(sink, _subscription(receiver.url))

    assert not failure.permanent
    assert "did not answer within 0.3 s" in failure.reason


async def test_template_failing_on_a_real_event_is_permanent_and_names_the_subscription(
    sink: WebhookSink, receiver: WebhookReceiver
) -> None:
    # Config load refuses this one; a template that still breaks on a real event fails for good.
    template = '{"m": {{ data.detail.milestone | json }}}'
    subscription = replace(_subscription(receiver.url), template=template)

    failure = await _failure(sink, subscription)

    assert failure.permanent
    assert failure.reason.startswith("subscription 'chatops': body template UndefinedError")
    assert receiver.requests == []
