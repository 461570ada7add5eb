"""A day of three builds behind the daily digest: the in-process service against a fake
Clanforge, a fake Slack and a webhook receiver, with a "builds" channel and a "chatops" webhook
that both take a digest at 09:00 Berlin."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from notifier.config import Settings, parse_config
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack, SlackCall
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.conftest import T0, service_config
from tests.integration.conftest import BUILDS_CHANNEL, hourly_ticks
from tests.support import config_files as toml
from tests.support.clock import HandClock

ASID = 1234
CHANNEL = BUILDS_CHANNEL
LABELS = {
    501: "EU fleet, build 1.4.2",
    502: "US fleet, build 1.4.2",
    503: "APAC fleet, build 1.4.2",
}


def digest_settings(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, receiver: WebhookReceiver
) -> Settings:
    """EU, US and APAC builds watched; "builds" gets completions, "chatops" failures, both a
    digest at 09:00 Berlin; a tick polls every watch (see ``hourly_ticks``)."""
    sections = f"""{hourly_ticks()}
[network]
allow_private = ["127.0.0.0/8"]

{toml.fake_slack(slack.base_url)}
{toml.watches(ASID, [501, 502, 503], lambda ivid: LABELS[ivid])}
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


def digest_counts(**counts: int) -> dict[str, int]:
    """The digest's ``counts`` in its webhook payload: ``counts`` given, every other kind 0."""
    return {"failed": 0, "squashed": 0, "stalled": 0, "running": 0, "completed": 0, **counts}


@dataclass
class DigestDay:
    """The service's settings, the fakes it talks to, and the hand clock its replicas share."""

    settings: Settings
    clanforge: FakeClanforge
    slack: FakeSlack
    receiver: WebhookReceiver
    clock: HandClock = field(default_factory=HandClock)

    async def of_builds(self, *, all_finish: bool = False) -> None:
        """On the evening of T0 one build completes, one fails, one is still running (or, with
        ``all_finish``, completes too); their own messages go out as they happen."""
        start = T0 - timedelta(minutes=12)
        self.clanforge.script(
            ASID,
            501,
            [
                status_reply(4, 40, start=start, updated=T0),
                status_reply(5, 100, start=start, updated=T0 + timedelta(minutes=41, seconds=7)),
            ],
        )
        self.clanforge.script(
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
        self.clanforge.script(
            ASID,
            503,
            [
                status_reply(4, 55, start=start, updated=T0),
                *([status_reply(5, 100, start=start, updated=T0)] if all_finish else []),
            ],
        )
        async with Service(self.settings, clock=self.clock) as service:
            for _ in range(3):
                await service.tick()
                await service.dispatch_due()
                self.clock.advance(3600)

    async def send_digests(self) -> int:
        """A replica started at the clock's time: what it enqueues, then sends; returns how
        many it enqueued."""
        async with Service(self.settings, clock=self.clock) as service:
            enqueued = await service.send_digests()
            await service.dispatch_due()
        return enqueued

    def slack_digests(self) -> list[SlackCall]:
        return [c for c in self.slack.top_level_posts(CHANNEL) if "Daily digest" in c.args["text"]]
