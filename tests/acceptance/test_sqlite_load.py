"""SQLite under load: one `notifier run` moving 200 image versions through their lifecycles to a
webhook and a Slack channel, while operators use the CLI (reads and writes) on the same file.
Nothing is lost, and no "database is locked" reaches anyone."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support import config_files as toml
from tests.support.service_process import run_cli, start_run, stop_beside
from tests.support.waiting import comes_true

pytestmark = pytest.mark.slow

ACCESS_KEY, SECRET_KEY, SLACK_TOKEN = "ak-load", "sk-load", "xoxb-load"
ASID = 5150
WATCHES = range(800_000, 800_200)
CHANNEL = "C0LOAD"


def write_config(
    path: Path, database_file: Path, fake: FakeClanforge, slack: FakeSlack, hooks: WebhookReceiver
) -> None:
    toml.write_config(
        path,
        toml.database(database_file),
        toml.busy_clanforge(fake.base_url, ACCESS_KEY, SECRET_KEY, 400),
        toml.poll_every(0.5),
        # The fake Slack has no rate limit; paced at Slack's 1 message/s, 200 builds take 10
        # minutes.
        toml.table(
            "slack", bot_token=SLACK_TOKEN, base_url=slack.base_url, channel_interval_seconds=0
        ),
        toml.LOOPBACK_NETWORK,
        toml.table(
            "delivery", timeout_seconds=2, max_concurrency=16, interval_seconds=0.2, lease_seconds=5
        ),
        toml.tables(
            "subscription",
            [
                {"name": "builds", "slack_channel": CHANNEL},
                {
                    "name": "chatops",
                    "webhook_url": hooks.url,
                    "events": ["imageversion.state_changed", "imageversion.completed"],
                },
            ],
        ),
        toml.watches(ASID, WATCHES, lambda ivid: f"b{ivid}"),
    )


async def operators(config: Path, results: list[tuple[int | None, str]]) -> None:
    n = 0
    while True:
        n += 1
        for argv in (
            ("deliveries", "list", "--status", "pending"),
            ("deliveries", "retry", "--all-dead"),
            ("watch", "add", "--asid", str(ASID), "--image-version", str(900_000 + n)),
            ("watch", "remove", "--image-version", str(900_000 + n)),
        ):
            results.append(await run_cli(config, *argv))


def all_live_messages_show_complete(slack: FakeSlack) -> bool:
    """Updates of one message may be merged, so count where each message ends, not updates."""
    return all(
        "Complete" in slack.messages[(CHANNEL, post.answer["ts"])].text
        for post in slack.top_level_posts(CHANNEL)
    )


@pytest.mark.timeout(240)
async def test_sqlite_under_load_with_the_cli_alongside_never_says_locked(tmp_path: Path) -> None:
    async with (
        FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY, record=False) as clanforge,
        FakeSlack(token=SLACK_TOKEN) as slack,
        WebhookReceiver() as hooks,
    ):
        for ivid in WATCHES:
            clanforge.script(
                ASID, ivid, [status_reply(3), status_reply(4, 50), status_reply(5, 100)]
            )
        # Operators' watches (900_000 + n) are unknown upstream: 404s, handled as poll errors.
        config = tmp_path / "notifier.toml"
        write_config(config, tmp_path / "notifier.db", clanforge, slack, hooks)
        # As the README has it: the database first, so the operators' commands find it even
        # before the service has started (only `run` and `db upgrade` create one).
        assert await run_cli(config, "db", "upgrade") == (0, "")
        log = tmp_path / "notifier.log"
        with log.open("wb") as out:
            service = await start_run(
                config,
                env=dict(os.environ),
                stdout=out,
                stderr=out,
            )
        results: list[tuple[int | None, str]] = []
        cli_task = asyncio.create_task(operators(config, results))
        expected_hooks = len(WATCHES) * 4
        try:
            done = await comes_true(
                lambda: (
                    len({r.headers["webhook-id"] for r in hooks.requests}) >= expected_hooks
                    and len(slack.top_level_posts(CHANNEL)) >= len(WATCHES)
                    and all_live_messages_show_complete(slack)
                ),
                180,
            )
        finally:
            await stop_beside(service, cli_task)
        output = log.read_text()
        assert done, output[-3000:]
        assert service.returncode == 0, output[-3000:]

    assert "database is locked" not in output
    assert results
    assert [r for r in results if r[0] != 0 or "locked" in r[1]] == []
    per_version = Counter(r.json["data"]["image_version_id"] for r in hooks.requests)
    assert set(per_version) == set(WATCHES)
    assert len(slack.top_level_posts(CHANNEL)) == len(WATCHES)
