"""Three `notifier run` replicas on one PostgreSQL database share one Clanforge budget and one
Slack pace per channel: ``requests_per_second`` is the account's limit whatever the number of
replicas, and a channel gets no more than Slack allows, from all of them together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tomli_w

from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from tests.support.replicas import replicas_running
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ACCESS_KEY, SECRET_KEY = "ak-shared-budget", "sk-shared-budget"
SLACK_TOKEN = "xoxb-shared-budget"
ASID = 4242
CHANNEL = "C0SHARED01"
RATE = 10
"""requests_per_second: the account's limit, for all three replicas together."""
ALLOWED = int(RATE * 1.2)
"""What the fake Clanforge answers within a second before it answers 429 (issue 24)."""
SLACK_INTERVAL = 0.5
"""Slack's "about one message a second per channel", halved to keep the test short: the fake
answers 429 to a post that comes sooner after the channel's last one."""
PACED_INTERVAL = 0.6
"""[slack] channel_interval_seconds: the pace, a tenth above the fake's: a post's way from its
turn to Slack varies by tens of milliseconds on a busy machine."""


def write_config(
    path: Path,
    database_url: str,
    clanforge: FakeClanforge,
    watches: range,
    **sections: dict[str, object] | list[dict[str, object]],
) -> Path:
    """Every replica's one configuration file; ``sections`` adds [slack], subscriptions..."""
    config = {
        "database": {"url": database_url},
        "clanforge": {
            "base_url": clanforge.base_url,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "timeout_seconds": 2,
            "requests_per_second": RATE,
        },
        "poll": {"interval_seconds": 0.5, "running_interval_seconds": 0.5},
        "network": {"allow_private": ["127.0.0.0/8", "::1/128"]},
        "delivery": {"interval_seconds": 0.2},
        "watch": [{"account_service_id": ASID, "image_version_id": ivid} for ivid in watches],
        **sections,
    }
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
async def limited_clanforge() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, rate_limit=ALLOWED, retry_after="1"
    ) as clanforge:
        yield clanforge


async def test_three_replicas_use_the_accounts_budget_together_and_draw_no_429(
    limited_clanforge: FakeClanforge, postgres_url: str, tmp_path: Path
) -> None:
    clanforge = limited_clanforge
    # 40 jobs Running, every one due each half second: 80 requests/s wanted, 10 allowed.
    watches = range(810_000, 810_040)
    for ivid in watches:
        clanforge.set_status(ASID, ivid, status_reply(4, 50))
    config = write_config(tmp_path / "notifier.toml", postgres_url, clanforge, watches)
    async with replicas_running(config, 3) as replicas:
        await eventually(lambda: len(clanforge.requests) >= 20, 30)
        await asyncio.sleep(12)
    results = replicas.results
    assert [code for code, _ in results] == [0, 0, 0], results

    times = [request.time for request in clanforge.requests]
    # The steady part: from two seconds after the first request to the last.
    steady = [t for t in times if t >= times[0] + 2]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    busiest = max(sum(1 for u in times if t <= u < t + 1) for t in times)
    print(
        f"\n3 replicas at requests_per_second = {RATE} against a limit of {ALLOWED}/s: "
        f"{len(times)} requests, {len(clanforge.limited_at)} answers of 429, "
        f"{achieved:.2f} requests/s in the steady part, busiest second {busiest}"
    )
    assert clanforge.limited_at == []
    assert achieved >= 0.95 * RATE
    assert busiest <= ALLOWED
    # Each replica polled (they logged no 429 and no shared-budget trouble).
    assert all("rate-limited" not in err and "shared Clanforge" not in err for _, err in results), [
        err for _, err in results
    ]


async def test_three_replicas_post_twenty_changes_into_one_channel_in_order_without_a_429(
    postgres_url: str, tmp_path: Path
) -> None:
    watches = range(820_000, 820_020)
    async with (
        FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
        FakeSlack(token=SLACK_TOKEN, post_interval_seconds=SLACK_INTERVAL) as slack,
    ):
        for ivid in watches:
            # Seen Running, then Complete: a live message, its update and a thread reply each.
            clanforge.script(
                ASID, ivid, [status_reply(4, 50), status_reply(4, 50), status_reply(5, 100)]
            )
        config = write_config(
            tmp_path / "notifier.toml",
            postgres_url,
            clanforge,
            watches,
            slack={
                "bot_token": SLACK_TOKEN,
                "base_url": slack.base_url,
                "channel_interval_seconds": PACED_INTERVAL,
            },
            subscription=[
                {
                    "name": "builds",
                    "slack_channel": CHANNEL,
                    "events": ["imageversion.state_changed"],
                }
            ],
        )
        async with replicas_running(config, 3) as replicas:
            await eventually(lambda: len(slack.posts(CHANNEL)) >= 2 * len(watches), 55)
            await asyncio.sleep(1.0)  # anything more that would come (it must not)
    results = replicas.results
    assert [code for code, _ in results] == [0, 0, 0], results

    posts = slack.top_level_posts(CHANNEL)
    print(
        f"\n3 replicas, {len(watches)} image versions in one channel: {len(slack.posts(CHANNEL))} "
        f"posts and {len(slack.updates(CHANNEL))} updates over "
        f"{slack.calls[-1].at - slack.calls[0].at:.1f} s, {slack.rate_limited} answers of 429"
    )
    assert slack.rate_limited == 0
    # One live message per image version (no replica posted it twice), each ending on Complete,
    # and its thread reply about Complete posted after it.
    assert len(posts) == len(watches)
    for post in posts:
        live = slack.messages[(CHANNEL, post.answer["ts"])]
        assert "Complete" in live.text
        replies = slack.thread_replies(post.answer["ts"])
        assert len(replies) == 1
        assert "Complete" in str(replies[0].args.get("text"))
        assert replies[0].at > post.at
