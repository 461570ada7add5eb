"""Silences end to end: the real poller, dispatcher and Slack sink, fake Clanforge, fake Slack and
a webhook receiver, on SQLite and PostgreSQL, time moved by hand.

A muted image version sends nothing while its silence lasts; when it ends, its live message gets
one update to the newest state and, if the job failed meanwhile, one reply that says so.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.retry import RetryPolicy
from notifier.core.silences import Matchers, NewSilence
from notifier.core.status import FAILED, RUNNING
from notifier.store.silences import (
    add_silence,
    controls_lookup,
    end_silences,
    expire_silence,
    list_silences,
)
from notifier.store.tables import DeliveryRow, EventRow
from notifier.testing.fake_slack import SlackCall
from tests.support.clock import HandClock
from tests.support.stepped import CHANNEL, IVID, SteppedReplica, stepped_replica

PAGE = "https://notifier.example.com/watches/{}"

Studio = SteppedReplica[HandClock]
"""The replica on a clock moved by hand, loading silences, with Slack's buttons."""


async def _count(engine: AsyncEngine, *where: Any) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(select(func.count()).select_from(DeliveryRow).where(*where)) or 0
        )


def _buttons(call: SlackCall) -> list[str]:
    return [
        element.get("action_id")
        for block in call.args["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


@pytest.fixture
async def studio(engine: AsyncEngine) -> AsyncIterator[Studio]:
    clock = HandClock(utc_now().replace(microsecond=0))
    async with stepped_replica(
        engine,
        clock=clock,
        silences=True,
        controls=controls_lookup(engine, clock, PAGE.format),
        policy=RetryPolicy(schedule_seconds=(0.05,) * 5, max_attempts=10, max_age_seconds=math.inf),
    ) as replica:
        yield replica


async def _posted_running(studio: Studio) -> str:
    await studio.poll(RUNNING, 30)
    await studio.drain()
    [post] = studio.slack.top_level_posts(CHANNEL)
    assert _buttons(post) == ["mute_1h", "stop_watching", "open"]
    return str(post.answer["ts"])


async def _mute_for_an_hour(studio: Studio) -> int:
    silence = await add_silence(
        studio.engine,
        NewSilence(
            Matchers(image_version_id=IVID),
            ends_at=studio.clock() + timedelta(hours=1),
            reason="known flaky builder",
            created_by="<@U0ANA>",
        ),
        source="slack",
        now=studio.clock(),
    )
    return silence.id


async def _muted_while_running(studio: Studio) -> tuple[str, int]:
    """The live message posted at Running 30 %, then muted for an hour with the mute shown on
    it; returns the message's ts and the silence's id."""
    ts = await _posted_running(studio)
    silence_id = await _mute_for_an_hour(studio)
    await studio.drain()
    return ts, silence_id


async def test_a_muted_image_version_sends_nothing_for_its_hour_then_one_update_and_one_reply(
    studio: Studio,
) -> None:
    ts = await _posted_running(studio)
    webhooks_before = len(studio.receiver.requests)
    silence_id = await _mute_for_an_hour(studio)
    await studio.drain()
    [shows_mute] = studio.slack.updates(CHANNEL)
    assert "muted until" in shows_mute.args["text"]
    banner = [b for b in shows_mute.args["blocks"] if b["type"] == "context"][-1]
    assert "*Muted* by <@U0ANA>" in banner["elements"][0]["text"]
    assert _buttons(shows_mute) == ["unmute", "stop_watching", "open"]
    sent_before = len(studio.calls())

    # The hour: progress moves, then the job fails. Nothing reaches Slack or the webhook.
    studio.clock.advance(600)
    await studio.poll(RUNNING, 60)
    studio.clock.advance(600)
    await studio.poll(FAILED, 80, error="Image locked by diffid 42")
    await studio.drain()
    assert len(studio.calls()) == sent_before
    assert len(studio.receiver.requests) == webhooks_before
    assert await _count(studio.engine, DeliveryRow.status == "held") > 0

    # The hour is over: one replica handles the end, and one update plus one reply go out.
    studio.clock.advance(3600)
    ended = await end_silences(studio.engine, studio.clock())
    assert (ended.silences, ended.resumed) == (1, 1)
    await studio.drain()
    after = studio.calls()[sent_before:]
    assert [c.method for c in after] == ["chat.update", "chat.postMessage"]
    update_call, reply = after
    assert update_call.args["ts"] == ts
    assert "Failed 80%" in update_call.args["text"]
    assert "muted" not in update_call.args["text"]
    assert _buttons(update_call) == ["mute_1h", "stop_watching", "open"]
    assert reply.args["thread_ts"] == ts
    assert reply.args["text"].startswith("Failed while muted: Running → Failed (80%)")
    assert reply.args["reply_broadcast"] is True
    # Webhooks get nothing for what was held; the events stay recorded with their silence.
    assert len(studio.receiver.requests) == webhooks_before
    async with studio.engine.connect() as conn:
        held = (
            await conn.execute(select(EventRow.type).where(EventRow.silence_id == silence_id))
        ).scalars()
        assert "imageversion.failed" in set(held)
    assert await _count(studio.engine, DeliveryRow.status == "held") == 0
    [listed] = await list_silences(studio.engine, studio.clock(), include_ended=True)
    assert (listed.state, listed.held_events > 0) == ("expired", True)

    # Another replica handling ends later finds nothing left to do.
    assert (await end_silences(studio.engine, studio.clock())).silences == 0
    await studio.drain()
    assert len(studio.calls()) == sent_before + 2


async def test_an_end_handled_by_three_replicas_at_once_resumes_the_message_once(
    studio: Studio,
) -> None:
    await _muted_while_running(studio)
    await studio.poll(FAILED, 80, error="boom")
    studio.clock.advance(3601)

    results = await asyncio.gather(*(end_silences(studio.engine, studio.clock()) for _ in range(3)))

    assert sum(r.silences for r in results) == 1
    assert sum(r.resumed for r in results) == 1
    await studio.drain()
    replies = [c for c in studio.slack.posts(CHANNEL) if c.args.get("thread_ts")]
    assert len(replies) == 1


async def test_expiring_early_brings_the_message_up_to_date_without_a_reply_when_nothing_failed(
    studio: Studio,
) -> None:
    ts, silence_id = await _muted_while_running(studio)
    await studio.poll(RUNNING, 70)
    await studio.drain()
    sent_before = len(studio.calls())

    expired = await expire_silence(studio.engine, silence_id, studio.clock(), "ana")
    assert expired is not None
    assert not expired.already
    await end_silences(studio.engine, studio.clock())
    await studio.drain()

    [update_call] = studio.calls()[sent_before:]
    assert update_call.args["ts"] == ts
    assert "Running 70%" in update_call.args["text"]
    assert _buttons(update_call)[0] == "mute_1h"
    assert studio.slack.thread_replies(ts) == []


async def test_a_silence_still_holding_keeps_what_an_ended_one_held(studio: Studio) -> None:
    await _posted_running(studio)
    short = await _mute_for_an_hour(studio)
    await add_silence(
        studio.engine,
        NewSilence(
            Matchers(label_glob="EU fleet*"),
            ends_at=studio.clock() + timedelta(hours=3),
            reason="EU maintenance",
            created_by="ops",
        ),
        source="cli",
        now=studio.clock(),
    )
    await studio.drain()
    await studio.poll(FAILED, 80, error="boom")
    await expire_silence(studio.engine, short, studio.clock(), "ana")

    await end_silences(studio.engine, studio.clock())
    await studio.drain()
    assert await _count(studio.engine, DeliveryRow.status == "held") > 0
    latest = studio.slack.updates(CHANNEL)[-1]
    # Held by the operator's silence now: it says so, and offers no Unmute that cannot lift it.
    assert "notifier silence expire" in str(latest.args["blocks"])
    assert "unmute" not in _buttons(latest)

    studio.clock.advance(3 * 3600)
    ended = await end_silences(studio.engine, studio.clock())
    assert ended.resumed == 1
    await studio.drain()
    assert "Failed 80%" in studio.slack.updates(CHANNEL)[-1].args["text"]


async def test_an_event_held_just_before_the_end_but_written_after_it_is_released_next_tick(
    studio: Studio,
) -> None:
    await _muted_while_running(studio)
    studio.clock.advance(3600 - 5)  # the poll sees the job 5 s before the end...
    after_the_end = studio.clock() + timedelta(seconds=10)
    assert (await end_silences(studio.engine, after_the_end)).silences == 1  # ...another replica
    await studio.poll(FAILED, 80, error="boom")  # ...and its write lands after that
    assert await _count(studio.engine, DeliveryRow.status == "held") > 0

    again = await end_silences(studio.engine, after_the_end)

    assert (again.silences, again.resumed) == (0, 1)
    studio.clock.advance(10)
    await studio.drain()
    assert "Failed 80%" in studio.slack.updates(CHANNEL)[-1].args["text"]
    [reply] = [c for c in studio.slack.posts(CHANNEL) if c.args.get("thread_ts")]
    assert reply.args["text"].startswith("Failed while muted")
