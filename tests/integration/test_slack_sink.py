"""SlackSink with the real slack-sdk AsyncWebClient against FakeSlack over real HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from notifier.core.clock import utc_now
from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.events import ETA_CHANGED, FAILED_EVENT, STATE_CHANGED, Event
from notifier.core.live_messages import LiveMessage, LiveMessageKey, PendingPost
from notifier.core.status import COMPLETE, FAILED, QUEUED, RUNNING, SQUASHED, JobStatus
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    Subscription,
)
from notifier.notify.pacing import ChannelPacer
from notifier.notify.slack import SlackSink
from notifier.testing.fake_slack import FakeSlack
from tests.conftest import make_event
from tests.support.samples import DETECTED, example_status

TOKEN = "xoxb-test-token"
CHANNEL = "C0123"
SUBSCRIPTION = SlackChannelSubscription(id=3, name="builds", channel=CHANNEL)


class MemoryLiveMessages:
    """The LiveMessages seam kept in a dict; the real one lives in the database."""

    def __init__(self) -> None:
        self.stored: dict[LiveMessageKey, LiveMessage | PendingPost] = {}

    async def get(self, key: LiveMessageKey) -> LiveMessage | PendingPost | None:
        return self.stored.get(key)

    async def reserve(self, key: LiveMessageKey, channel: str) -> PendingPost:
        pending = PendingPost(channel=channel, since=utc_now())
        self.stored[key] = pending
        return pending

    async def release(self, key: LiveMessageKey) -> None:
        if isinstance(self.stored.get(key), PendingPost):
            del self.stored[key]

    async def put(self, key: LiveMessageKey, message: LiveMessage) -> None:
        self.stored[key] = message


def _status(state_id: int, state: str, progress: int, error: str | None = None) -> JobStatus:
    return example_status(
        state_id=state_id,
        state=state,
        progress=progress,
        error=error,
        failed_count=1 if error else 0,
        created=None,
        started=None,
    )


QUEUED_0 = _status(QUEUED, "Queued", 0)
RUNNING_40 = _status(RUNNING, "Running", 40)
FAILED_80 = _status(FAILED, "Failed", 80, error="Image locked by diffid 42")


def _event(
    current: JobStatus, previous: JobStatus | None = None, type: str = STATE_CHANGED
) -> Event:
    return make_event(
        current, previous, type=type, event_id=f"evt_{type}_{current.state}", occurred_at=DETECTED
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN, channels={CHANNEL, "C0OTHER"}) as running:
        yield running


@pytest.fixture
def live() -> MemoryLiveMessages:
    return MemoryLiveMessages()


@pytest.fixture
def sink(fake: FakeSlack, session: aiohttp.ClientSession, live: MemoryLiveMessages) -> SlackSink:
    client = AsyncWebClient(token=TOKEN, base_url=fake.base_url, session=session)
    return SlackSink(client, live, pacer=ChannelPacer(0))


async def _failure(sink: SlackSink, event: Event, subscription: Subscription) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as caught:
        await sink.deliver(event, subscription)
    return caught.value


async def test_first_sighting_posts_one_live_message_and_remembers_it(
    sink: SlackSink, fake: FakeSlack, live: MemoryLiveMessages
) -> None:
    await sink.deliver(_event(QUEUED_0), SUBSCRIPTION)

    [post] = fake.posts()
    assert post.args["channel"] == CHANNEL
    assert "Queued 0%" in post.args["text"]
    assert post.args["blocks"][0]["type"] == "header"
    stored = live.stored[LiveMessageKey(3, 1234, 567890)]
    assert isinstance(stored, LiveMessage)
    assert (stored.channel, stored.ts) == (CHANNEL, post.answer["ts"])
    assert fake.updates() == []


async def test_state_change_updates_the_same_message_and_replies_in_its_thread(
    sink: SlackSink, fake: FakeSlack
) -> None:
    await sink.deliver(_event(QUEUED_0), SUBSCRIPTION)
    await sink.deliver(_event(RUNNING_40, QUEUED_0), SUBSCRIPTION)

    [first] = fake.top_level_posts()
    [update] = fake.updates()
    live_ts = first.answer["ts"]
    assert update.args["ts"] == live_ts
    assert "Running 40%" in update.args["text"]
    assert "ETA 2026-11-28 17:10 UTC" in update.args["text"]
    [reply] = fake.thread_replies(live_ts)
    assert reply.args["text"] == ":gear: Queued → Running (40%)"
    assert not reply.args.get("reply_broadcast")
    assert first.at <= update.at <= reply.at


async def test_failed_job_reply_is_broadcast_to_channel(sink: SlackSink, fake: FakeSlack) -> None:
    await sink.deliver(_event(RUNNING_40), SUBSCRIPTION)
    await sink.deliver(_event(FAILED_80, RUNNING_40), SUBSCRIPTION)

    [update] = fake.updates()
    assert "Image locked by diffid 42" in update.args["text"]
    [reply] = fake.thread_replies(update.args["ts"])
    assert reply.args["reply_broadcast"] is True
    assert "Running → Failed (80%)" in reply.args["text"]
    assert "Image locked by diffid 42" in reply.args["text"]


async def test_squashed_job_reply_is_broadcast_but_completed_is_not(
    sink: SlackSink, fake: FakeSlack
) -> None:
    other = SlackChannelSubscription(id=4, name="other", channel="C0OTHER")
    await sink.deliver(_event(RUNNING_40), SUBSCRIPTION)
    await sink.deliver(_event(RUNNING_40), other)

    await sink.deliver(_event(_status(SQUASHED, "Squashed", 40), RUNNING_40), SUBSCRIPTION)
    await sink.deliver(_event(_status(COMPLETE, "Complete", 100), RUNNING_40), other)

    squashed_reply, completed_reply = [p for p in fake.posts() if p.args.get("thread_ts")]
    assert squashed_reply.args["channel"] == CHANNEL
    assert squashed_reply.args["reply_broadcast"] is True
    assert completed_reply.args["channel"] == "C0OTHER"
    assert not completed_reply.args.get("reply_broadcast")


async def test_events_other_than_state_changes_update_without_a_reply(
    sink: SlackSink, fake: FakeSlack
) -> None:
    later_eta = replace(RUNNING_40, eta=datetime(2026, 11, 28, 17, 30, tzinfo=UTC))
    await sink.deliver(_event(RUNNING_40), SUBSCRIPTION)
    await sink.deliver(_event(later_eta, RUNNING_40, type=ETA_CHANGED), SUBSCRIPTION)
    await sink.deliver(_event(FAILED_80, later_eta, type=FAILED_EVENT), SUBSCRIPTION)

    assert len(fake.top_level_posts()) == 1
    assert len(fake.updates()) == 2
    assert [p for p in fake.posts() if p.args.get("thread_ts")] == []


async def test_deleted_live_message_is_replaced_by_a_fresh_post(
    sink: SlackSink, fake: FakeSlack, live: MemoryLiveMessages
) -> None:
    await sink.deliver(_event(QUEUED_0), SUBSCRIPTION)
    old = live.stored[LiveMessageKey(3, 1234, 567890)]
    assert isinstance(old, LiveMessage)
    fake.delete_message(old.channel, old.ts)

    await sink.deliver(_event(RUNNING_40, QUEUED_0), SUBSCRIPTION)

    fresh = live.stored[LiveMessageKey(3, 1234, 567890)]
    assert isinstance(fresh, LiveMessage)
    assert fresh.ts != old.ts
    assert [call.error for call in fake.calls if call.method == "chat.update"] == [
        "message_not_found"
    ]
    assert "Running 40%" in fake.messages[(CHANNEL, fresh.ts)].text
    assert len(fake.thread_replies(fresh.ts)) == 1

    await sink.deliver(_event(FAILED_80, RUNNING_40), SUBSCRIPTION)
    assert [update.args["ts"] for update in fake.updates()] == [fresh.ts]


@pytest.mark.parametrize("error", ["cant_update_message", "edit_window_closed"])
async def test_message_that_can_no_longer_be_edited_is_replaced(
    sink: SlackSink, fake: FakeSlack, live: MemoryLiveMessages, error: str
) -> None:
    await sink.deliver(_event(QUEUED_0), SUBSCRIPTION)
    fake.fail_next("chat.update", error)

    await sink.deliver(_event(RUNNING_40, QUEUED_0), SUBSCRIPTION)

    first, fresh = fake.top_level_posts()
    stored = live.stored[LiveMessageKey(3, 1234, 567890)]
    assert isinstance(stored, LiveMessage)
    assert (stored.channel, stored.ts) == (CHANNEL, fresh.answer["ts"])
    assert fresh.answer["ts"] != first.answer["ts"]
    assert len(fake.thread_replies(fresh.answer["ts"])) == 1


async def test_unknown_channel_is_permanent_and_says_what_to_check(sink: SlackSink) -> None:
    missing = SlackChannelSubscription(id=9, name="typo", channel="C0TYPO")

    failure = await _failure(sink, _event(QUEUED_0), missing)

    assert failure.permanent
    assert "channel_not_found" in failure.reason
    assert "C0TYPO" in failure.reason


async def test_bot_not_in_channel_is_permanent_and_asks_for_an_invite(
    sink: SlackSink, fake: FakeSlack
) -> None:
    fake.fail_next("chat.postMessage", "not_in_channel")

    failure = await _failure(sink, _event(QUEUED_0), SUBSCRIPTION)

    assert failure.permanent
    assert failure.reason == "Slack says not_in_channel: invite the bot to C0123"


async def test_rejected_token_is_permanent_and_never_quoted(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    wrong = "xoxb-wrong-token-123"
    sink = SlackSink(
        AsyncWebClient(token=wrong, base_url=fake.base_url, session=session),
        MemoryLiveMessages(),
    )

    failure = await _failure(sink, _event(QUEUED_0), SUBSCRIPTION)

    assert failure.permanent
    assert "invalid_auth" in failure.reason
    assert wrong not in failure.reason
    assert fake.messages == {}


async def test_rate_limit_is_transient_with_slacks_retry_after(
    sink: SlackSink, fake: FakeSlack
) -> None:
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=3)

    failure = await _failure(sink, _event(QUEUED_0), SUBSCRIPTION)

    assert not failure.permanent
    assert failure.retry_after == 3
    assert "ratelimited" in failure.reason


async def test_rate_limited_update_is_retried_later_not_replaced_by_a_post(
    sink: SlackSink, fake: FakeSlack
) -> None:
    await sink.deliver(_event(QUEUED_0), SUBSCRIPTION)
    fake.fail_next("chat.update", retry_after=1)

    failure = await _failure(sink, _event(RUNNING_40, QUEUED_0), SUBSCRIPTION)

    assert failure.retry_after == 1
    assert len(fake.top_level_posts()) == 1


async def test_slack_server_error_is_transient(sink: SlackSink, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", "internal_error", status=500)

    failure = await _failure(sink, _event(QUEUED_0), SUBSCRIPTION)

    assert not failure.permanent


async def test_unreachable_slack_is_transient(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # No retry handlers: the SDK's default one sleeps a second before its one retry.
    client = AsyncWebClient(
        token=TOKEN, base_url=f"http://127.0.0.1:{port}/api/", session=session, retry_handlers=[]
    )
    sink = SlackSink(client, MemoryLiveMessages())

    failure = await _failure(sink, _event(QUEUED_0), SUBSCRIPTION)

    assert not failure.permanent
    assert TOKEN not in failure.reason


async def test_huge_hostile_error_is_accepted_by_slacks_limits(
    sink: SlackSink, fake: FakeSlack
) -> None:
    error = "<!channel> ```" + "x" * 6000
    await sink.deliver(_event(RUNNING_40), SUBSCRIPTION)

    await sink.deliver(_event(_status(FAILED, "Failed", 80, error=error), RUNNING_40), SUBSCRIPTION)

    assert all(call.ok for call in fake.calls)
    assert "<!channel>" not in json.dumps([call.args for call in fake.calls])


async def test_fake_slack_accepts_form_encoded_arguments(
    fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    async with session.post(
        fake.base_url + "chat.postMessage",
        data={"channel": CHANNEL, "text": "hi", "blocks": json.dumps(blocks), "token": TOKEN},
    ) as response:
        answer = await response.json()

    assert answer["ok"] is True
    [post] = fake.posts()
    assert post.args == {"channel": CHANNEL, "text": "hi", "blocks": blocks}


async def test_fake_slack_answers_auth_test_for_the_right_token(
    sink: SlackSink, fake: FakeSlack, session: aiohttp.ClientSession
) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake.base_url, session=session)

    answer = await client.auth_test()

    assert answer["ok"] is True
    assert answer["bot_id"] == "B0FAKE"


async def test_hostile_joberror_arrives_escaped_and_truncated_everywhere(
    sink: SlackSink, fake: FakeSlack
) -> None:
    error = "<!channel> see <https://evil.example|click> & run ```rm -rf``` " + "y" * 5000
    await sink.deliver(_event(RUNNING_40), SUBSCRIPTION)

    await sink.deliver(_event(_status(FAILED, "Failed", 80, error=error), RUNNING_40), SUBSCRIPTION)

    [update] = fake.updates()
    [reply] = fake.thread_replies(update.args["ts"])
    for call in (update, reply):
        assert call.ok
        texts = [call.args["text"]] + [
            b["text"]["text"] for b in call.args["blocks"] if b["type"] == "section"
        ]
        joined = "\n".join(texts)
        assert "<!channel>" not in joined
        assert "<https://evil" not in joined
        assert "&lt;!channel&gt; see &lt;https://evil.example|click&gt; &amp; run" in joined
        [code] = [t for t in texts[1:] if "```" in t]
        assert code.count("```") == 2, "upstream backticks must not close the code block"
        assert code.endswith("```… (truncated)")
        assert len(code) <= 3000
        assert call.args["text"].endswith("… (truncated)")
        assert len(call.args["text"]) <= 4000
