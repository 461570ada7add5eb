"""Owners paged on failure: the real service, a fake Clanforge, a fake Slack, a real database.

A mention is part of the thread reply the outbox sends once, so a restart (a new process with
nothing in memory) must not page anyone a second time, and a failed send retried must page once.
"""

from __future__ import annotations

from datetime import timedelta

from notifier.config import parse_config
from notifier.core.lease import Lease
from notifier.service import Service
from notifier.store.outbox import SqlOutbox
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack, SlackCall
from tests.conftest import service_config
from tests.integration.conftest import BUILDS_CHANNEL, hourly_ticks
from tests.support import config_files as toml
from tests.support.clock import HandClock
from tests.support.narrow import event_of

ASID, IVID = 1234, 567890
CHANNEL = BUILDS_CHANNEL
OWNER, GROUP = "<@U0OWNER01>", "<!subteam^S0ONCALL1>"


def _config(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack, subscription: str = ""
) -> str:
    sections = f"""{hourly_ticks()}
{toml.fake_slack(slack.base_url)}
[[watch]]
account_service_id = {ASID}
image_version_id = {IVID}
label = "EU fleet, build 1.4.2"
owners = ["{OWNER}", "{GROUP}"]

[[subscription]]
name = "builds"
slack_channel = "{CHANNEL}"
{subscription}
"""
    return service_config(database_url, clanforge.base_url, sections=sections)


async def _poll_and_send(service: Service, clock: HandClock, ticks: int) -> None:
    for _ in range(ticks):
        await service.tick()
        while await service.dispatch_due():
            pass
        clock.advance(3600)


def _mentioning(slack: FakeSlack, who: str) -> list[SlackCall]:
    return [call for call in slack.posts(CHANNEL) if who in call.args["text"]]


async def test_failed_job_mentions_its_owners_once_across_a_restart(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack
) -> None:
    clanforge.script(
        ASID,
        IVID,
        [
            status_reply(4, 40),
            status_reply(6, 80, error="Image locked by diffid 42", failed=1),
        ],
    )
    settings = parse_config(_config(database_url, clanforge, slack), {})
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await _poll_and_send(service, clock, 3)
    # A new process: nothing in memory, the same database; the job stays failed.
    async with Service(settings, clock=clock) as service:
        await _poll_and_send(service, clock, 3)

    [reply] = _mentioning(slack, OWNER)
    assert reply.args["text"].startswith(f"{OWNER} {GROUP} :x: Running → Failed (80%)")
    assert reply.args["thread_ts"] == slack.top_level_posts(CHANNEL)[0].answer["ts"]
    assert reply.args["reply_broadcast"] is True
    assert _mentioning(slack, GROUP) == [reply]


async def test_a_reply_that_failed_to_send_mentions_once_when_retried(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack
) -> None:
    clanforge.script(ASID, IVID, [status_reply(4, 40), status_reply(6, 80, error="locked")])
    settings = parse_config(_config(database_url, clanforge, slack), {})
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await _poll_and_send(service, clock, 1)
        slack.fail_next("chat.postMessage", "internal_error")
        await _poll_and_send(service, clock, 3)

    refused = [c for c in slack.calls if not c.ok and OWNER in c.args.get("text", "")]
    assert len(refused) == 1
    assert len(_mentioning(slack, OWNER)) == 1


async def test_a_running_job_pages_nobody_and_mention_on_widens_it_with_extra_people(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack
) -> None:
    clanforge.script(ASID, IVID, [status_reply(3), status_reply(4, 40), status_reply(5, 100)])
    extra = 'mention_on = ["imageversion.completed"]\nmention = ["<!here>", "<@U0LEAD001>"]'
    settings = parse_config(_config(database_url, clanforge, slack, extra), {})
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await _poll_and_send(service, clock, 4)

    [reply] = _mentioning(slack, OWNER)
    assert reply.args["text"].startswith(
        f"{OWNER} {GROUP} <!here> <@U0LEAD001> :white_check_mark: Running → Complete (100%)"
    )
    assert [c for c in slack.posts(CHANNEL) if "<!here>" in c.args["text"]] == [reply]


async def test_the_claimed_event_carries_the_owners_the_watch_has_when_it_is_sent(
    database_url: str, clanforge: FakeClanforge, slack: FakeSlack
) -> None:
    clanforge.script(ASID, IVID, [status_reply(4, 40)])
    settings = parse_config(_config(database_url, clanforge, slack), {})
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await service.tick()
        [claimed] = await SqlOutbox(service.engine).claim_due(
            Lease("someone", clock(), timedelta(seconds=30)), 10
        )

    assert event_of(claimed).owners == (OWNER, GROUP)
