"""The daily digest: rendered from the events table, claimed like a delivery, sent once a day.

Three replicas fire the same cron trigger at 09:00 Berlin; only one digest reaches Slack and one
reaches the webhook. A replica started after the send sends nothing more; a day when nothing
happened sends nothing at all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update

from notifier.config import Settings, parse_config
from notifier.service import Service
from notifier.store.tables import SubscriptionRow
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FAKE_TOKEN, FakeSlack, SlackCall
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, service_config
from tests.integration.conftest import BUILDS_CHANNEL, hourly_ticks
from tests.support.clock import HandClock

ASID = 1234
CHANNEL = BUILDS_CHANNEL
# 09:00 in Berlin on the day after T0 (winter: UTC+1), half a minute in, as a trigger runs.
DIGEST_TIME = datetime(2026, 11, 29, 8, 0, 30, tzinfo=UTC)
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "webhook-payload.schema.json"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


def _settings(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> Settings:
    sections = f"""{hourly_ticks()}
[network]
allow_private = ["127.0.0.0/8"]

[slack]
bot_token = "{FAKE_TOKEN}"
base_url = "{slack.base_url}"
channel_interval_seconds = 0

[[watch]]
account_service_id = {ASID}
image_version_id = 501
label = "EU fleet, build 1.4.2"

[[watch]]
account_service_id = {ASID}
image_version_id = 502
label = "US fleet, build 1.4.2"

[[watch]]
account_service_id = {ASID}
image_version_id = 503
label = "APAC fleet, build 1.4.2"

[[subscription]]
name = "builds"
slack_channel = "{CHANNEL}"
events = ["imageversion.completed"]
digest = "09:00 Europe/Berlin"

[[subscription]]
name = "chatops"
webhook_url = "{receiver.url}"
events = ["imageversion.failed"]
digest = "09:00 Europe/Berlin"
"""
    return parse_config(service_config(database_url, clanforge.base_url, sections=sections), {})


def _digests(slack: FakeSlack) -> list[SlackCall]:
    return [c for c in slack.top_level_posts(CHANNEL) if "Daily digest" in c.args["text"]]


async def _a_day_of_builds(
    settings: Settings, clanforge: FakeClanforge, clock: HandClock, *, all_finish: bool = False
) -> None:
    """On the evening of T0 one build completes, one fails, one is still running (or, with
    ``all_finish``, completes too); their own messages go out as they happen."""
    start = T0 - timedelta(minutes=12)
    clanforge.script(
        ASID,
        501,
        [
            status_reply(4, 40, start=start, updated=T0),
            status_reply(5, 100, start=start, updated=T0 + timedelta(minutes=41, seconds=7)),
        ],
    )
    clanforge.script(
        ASID,
        502,
        [
            status_reply(4, 30, start=start, updated=T0),
            status_reply(
                6,
                60,
                error="Image locked by diffid 42",
                start=start,
                updated=T0 + timedelta(minutes=19),
            ),
        ],
    )
    clanforge.script(
        ASID,
        503,
        [
            status_reply(4, 55, start=start, updated=T0),
            *([status_reply(5, 100, start=start, updated=T0)] if all_finish else []),
        ],
    )
    async with Service(settings, clock=clock) as service:
        for _ in range(3):
            await service.tick()
            await service.dispatch_due()
            clock.advance(3600)


async def _send_digests(settings: Settings, clock: HandClock) -> int:
    """A replica started at ``clock()``: what it enqueues, then sends; returns how many."""
    async with Service(settings, clock=clock) as service:
        enqueued = await service.send_digests()
        await service.dispatch_due()
    return enqueued


async def test_three_replicas_send_one_digest_to_slack_and_one_to_the_webhook(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> None:
    settings = _settings(database_url, clanforge, slack, receiver)
    clock = HandClock()
    await _a_day_of_builds(settings, clanforge, clock)
    clock.now = DIGEST_TIME
    webhook_events = len(receiver.requests)

    async with (
        Service(settings, clock=clock, replica_id="a") as a,
        Service(settings, clock=clock, replica_id="b") as b,
        Service(settings, clock=clock, replica_id="c") as c,
    ):
        replicas = (a, b, c)
        enqueued = await asyncio.gather(*(r.send_digests() for r in replicas))
        await asyncio.gather(*(r.dispatch_due() for r in replicas))

    assert sorted(enqueued) in ([0, 0, 2], [0, 1, 1])
    [digest] = _digests(slack)
    text = json.dumps(digest.args["blocks"])
    assert digest.args["text"] == (
        "Daily digest, 2026-11-29: 1 failed, 1 still running, 1 completed"
    )
    assert "took 53 min 7 s" in text  # started 12 min before T0, complete 41 min 7 s after
    assert "running for 15 h 12 min" in text
    assert "US fleet, build 1.4.2" in text
    [hook] = receiver.requests[webhook_events:]
    assert re.fullmatch(r"dig_\d+_2026-11-29", hook.headers["webhook-id"])
    assert hook.json["type"] == "digest.daily"
    assert hook.json["data"]["counts"] == {
        "failed": 1,
        "squashed": 0,
        "stalled": 0,
        "running": 1,
        "completed": 1,
    }
    jsonschema.validate(hook.json, json.loads(SCHEMA.read_text(encoding="utf-8")))


async def test_a_replica_started_after_the_send_sends_no_second_digest(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> None:
    settings = _settings(database_url, clanforge, slack, receiver)
    clock = HandClock()
    await _a_day_of_builds(settings, clanforge, clock)
    clock.now = DIGEST_TIME
    assert await _send_digests(settings, clock) == 2
    clock.advance(600)  # a restart ten minutes later, still within the catch-up hour
    assert await _send_digests(settings, clock) == 0

    assert len(_digests(slack)) == 1
    assert [r.json["type"] for r in receiver.requests].count("digest.daily") == 1


async def test_a_day_when_nothing_happened_and_nothing_is_unfinished_sends_no_digest(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> None:
    settings = _settings(database_url, clanforge, slack, receiver)
    clock = HandClock()
    await _a_day_of_builds(settings, clanforge, clock, all_finish=True)
    clock.now = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)  # the next day: all quiet

    assert await _send_digests(settings, clock) == 0
    assert _digests(slack) == []
    assert all(r.json["type"] != "digest.daily" for r in receiver.requests)


async def test_a_job_still_running_with_no_event_in_the_day_is_listed_as_still_running(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> None:
    settings = _settings(database_url, clanforge, slack, receiver)
    clock = HandClock()
    await _a_day_of_builds(settings, clanforge, clock)
    # The next day: the APAC build, last heard of 37 h ago, still runs; the two that finished
    # the day before are not listed again.
    clock.now = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)
    webhook_events = len(receiver.requests)

    assert await _send_digests(settings, clock) == 2

    [digest] = _digests(slack)
    assert digest.args["text"] == "Daily digest, 2026-11-30: 1 still running"
    text = json.dumps(digest.args["blocks"])
    assert "APAC fleet, build 1.4.2" in text
    assert "running for 1 d 15 h" in text  # started 12 min before T0, 39 h 12 min ago
    assert "EU fleet" not in text
    assert "US fleet" not in text
    [hook] = receiver.requests[webhook_events:]
    assert hook.json["type"] == "digest.daily"
    assert hook.json["data"]["counts"] == {
        "failed": 0,
        "squashed": 0,
        "stalled": 0,
        "running": 1,
        "completed": 0,
    }
    [job] = hook.json["data"]["jobs"]
    assert (job["label"], job["outcome"]) == ("APAC fleet, build 1.4.2", "running")
    assert job["duration_seconds"] == 39 * 3600 + 12 * 60  # up to the 09:00 the digest covers


async def test_each_digest_time_gets_a_cron_trigger_in_its_zone_and_loses_it_when_unused(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> None:
    settings = _settings(database_url, clanforge, slack, receiver)
    scheduler = AsyncIOScheduler(timezone="UTC")
    async with Service(settings) as service:
        await service.schedule_digests(scheduler)
        [job] = [j for j in scheduler.get_jobs() if j.id.startswith("digest ")]
        assert job.id == "digest 09:00 Europe/Berlin"
        assert isinstance(job.trigger, CronTrigger)
        assert str(job.trigger.timezone) == "Europe/Berlin"
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("9", "0")

        async with service.engine.begin() as conn:
            await conn.execute(update(SubscriptionRow).values(digest=None))
        await service.schedule_digests(scheduler)
        assert [j.id for j in scheduler.get_jobs() if j.id.startswith("digest ")] == []
