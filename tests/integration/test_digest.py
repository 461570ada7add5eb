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
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update

from notifier.service import Service
from notifier.store.tables import SubscriptionRow
from notifier.testing.fake_clanforge import FakeClanforge
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.digest_day import DigestDay, digest_counts, digest_settings

# 09:00 in Berlin on the day after T0 (winter: UTC+1), half a minute in, as a trigger runs.
DIGEST_TIME = datetime(2026, 11, 29, 8, 0, 30, tzinfo=UTC)
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "webhook-payload.schema.json"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as running:
        yield running


@pytest.fixture
def day(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> DigestDay:
    return DigestDay(
        digest_settings(database_url, clanforge, slack, receiver), clanforge, slack, receiver
    )


async def test_three_replicas_send_one_digest_to_slack_and_one_to_the_webhook(
    day: DigestDay,
) -> None:
    await day.of_builds()
    day.clock.now = DIGEST_TIME
    webhook_events = len(day.receiver.requests)

    async with (
        Service(day.settings, clock=day.clock, replica_id="a") as a,
        Service(day.settings, clock=day.clock, replica_id="b") as b,
        Service(day.settings, clock=day.clock, replica_id="c") as c,
    ):
        replicas = (a, b, c)
        enqueued = await asyncio.gather(*(r.send_digests() for r in replicas))
        await asyncio.gather(*(r.dispatch_due() for r in replicas))

    assert sorted(enqueued) in ([0, 0, 2], [0, 1, 1])
    [digest] = day.slack_digests()
    text = json.dumps(digest.args["blocks"])
    assert digest.args["text"] == (
        "Daily digest, 2026-11-29: 1 failed, 1 still running, 1 completed"
    )
    assert "took 53 min 7 s" in text  # started 12 min before T0, complete 41 min 7 s after
    assert "running for 15 h 12 min" in text
    assert "US fleet, build 1.4.2" in text
    [hook] = day.receiver.requests[webhook_events:]
    assert re.fullmatch(r"dig_\d+_2026-11-29", hook.headers["webhook-id"])
    assert hook.json["type"] == "digest.daily"
    assert hook.json["data"]["counts"] == digest_counts(failed=1, running=1, completed=1)
    jsonschema.validate(hook.json, json.loads(SCHEMA.read_text(encoding="utf-8")))


async def test_a_replica_started_after_the_send_sends_no_second_digest(day: DigestDay) -> None:
    await day.of_builds()
    day.clock.now = DIGEST_TIME
    assert await day.send_digests() == 2
    day.clock.advance(600)  # a restart ten minutes later, still within the catch-up hour
    assert await day.send_digests() == 0

    assert len(day.slack_digests()) == 1
    assert [r.json["type"] for r in day.receiver.requests].count("digest.daily") == 1


async def test_a_day_when_nothing_happened_and_nothing_is_unfinished_sends_no_digest(
    day: DigestDay,
) -> None:
    await day.of_builds(all_finish=True)
    day.clock.now = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)  # the next day: all quiet

    assert await day.send_digests() == 0
    assert day.slack_digests() == []
    assert all(r.json["type"] != "digest.daily" for r in day.receiver.requests)


async def test_a_job_still_running_with_no_event_in_the_day_is_listed_as_still_running(
    day: DigestDay,
) -> None:
    await day.of_builds()
    # The next day: the APAC build, last heard of 37 h ago, still runs; the two that finished
    # the day before are not listed again.
    day.clock.now = datetime(2026, 11, 30, 8, 0, 30, tzinfo=UTC)
    webhook_events = len(day.receiver.requests)

    assert await day.send_digests() == 2

    [digest] = day.slack_digests()
    assert digest.args["text"] == "Daily digest, 2026-11-30: 1 still running"
    text = json.dumps(digest.args["blocks"])
    assert "APAC fleet, build 1.4.2" in text
    assert "running for 1 d 15 h" in text  # started 12 min before T0, 39 h 12 min ago
    assert "EU fleet" not in text
    assert "US fleet" not in text
    [hook] = day.receiver.requests[webhook_events:]
    assert hook.json["type"] == "digest.daily"
    assert hook.json["data"]["counts"] == digest_counts(running=1)
    [job] = hook.json["data"]["jobs"]
    assert (job["label"], job["outcome"]) == ("APAC fleet, build 1.4.2", "running")
    assert job["duration_seconds"] == 39 * 3600 + 12 * 60  # up to the 09:00 the digest covers


async def test_each_digest_time_gets_a_cron_trigger_in_its_zone_and_loses_it_when_unused(
    day: DigestDay,
) -> None:
    scheduler = AsyncIOScheduler(timezone="UTC")
    async with Service(day.settings) as service:
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
