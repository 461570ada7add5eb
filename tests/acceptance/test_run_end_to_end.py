"""`notifier run` as a user runs it: a subprocess with a config file, against a scripted fake
Clanforge, a fake Slack Web API and a webhook receiver, all real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest

from notifier.notify.render import escape_slack
from notifier.testing.fake_clanforge import FakeReply, status_reply
from tests.support import config_files as toml
from tests.support.service_process import run_cli_output
from tests.support.story import (
    ACCESS_KEY,
    ASID,
    COMPLETES,
    COMPLETING,
    ERROR,
    ETA,
    FAILING,
    FAILS,
    SECRET_KEY,
    SECRETS,
    SLACK_TOKEN,
    STARTED,
    WEBHOOK_SECRET,
    run_env,
    start_notifier,
    stop_notifier,
    write_story_config,
)
from tests.support.upstream import Upstream, upstream_servers
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with upstream_servers(ACCESS_KEY, SECRET_KEY, SLACK_TOKEN) as servers:
        yield servers


def write_config(path: Path, up: Upstream, database_file: Path) -> Path:
    """The story, told in a Slack channel (every state change) and to a webhook (the ends)."""
    return write_story_config(
        path,
        up.clanforge.base_url,
        database_file,
        toml.table(
            "slack",
            bot_token="${SLACK_BOT_TOKEN}",
            base_url=up.slack.base_url,
            channel_interval_seconds=0.05,
        ),
        toml.tables(
            "subscription",
            [
                {
                    "name": "builds",
                    "slack_channel": "C0123456789",
                    "events": ["imageversion.state_changed"],
                },
                {
                    "name": "chatops",
                    "webhook_url": up.hooks.url,
                    "webhook_secret": "${CHATOPS_WEBHOOK_SECRET}",
                    "events": ["imageversion.failed", "imageversion.completed"],
                },
            ],
        ),
    )


async def test_lifecycle_reaches_slack_and_webhook_exactly(
    upstream: Upstream, tmp_path: Path
) -> None:
    up = upstream
    up.clanforge.script(ASID, COMPLETES, COMPLETING)
    up.clanforge.script(ASID, FAILS, FAILING)
    config = write_config(tmp_path / "notifier.toml", up, tmp_path / "notifier.db")
    proc = await start_notifier(config)
    try:
        await eventually(
            lambda: (
                len(up.hooks.requests) >= 2
                and len([p for p in up.slack.posts() if p.args.get("thread_ts")]) >= 4
            )
        )
        await asyncio.sleep(0.5)  # anything more that would arrive (it must not)
    finally:
        code, output = await stop_notifier(proc)

    assert code == 0, output
    for secret in SECRETS:
        assert secret not in output

    # Slack: one live message per image version, ending on the final state (pending updates of
    # one message are merged, so there are at most two edits), a thread reply per change, the
    # failure broadcast to the channel.
    posts = up.slack.top_level_posts("C0123456789")
    assert len(posts) == 2
    for image_version, label, final_text in (
        (COMPLETES, "EU fleet, build 1.4.2", "Complete 100%"),
        (FAILS, "US fleet, build 1.4.2", "Failed 40%"),
    ):
        [post] = [p for p in posts if label in p.args["text"]]
        ts = post.answer["ts"]
        updates = [u.args["text"] for u in up.slack.updates() if u.args["ts"] == ts]
        assert len(updates) <= 2
        shown = up.slack.messages[("C0123456789", ts)].text
        assert final_text in shown
        # Finished: how long the job took, not an ETA that may still lie ahead.
        assert " · took " in shown
        assert "ETA" not in shown
        replies = up.slack.thread_replies(ts)
        assert [("Queued → Running" in r.args["text"]) for r in replies] == [True, False]
        assert final_text.split()[0] in replies[1].args["text"]
        broadcast = [r.args.get("reply_broadcast") in (True, "true", "1") for r in replies]
        assert broadcast == [False, image_version == FAILS]
        del image_version
    [failed] = [m.text for m in up.slack.messages.values() if m.text.startswith("US fleet")]
    assert escape_slack(ERROR) in failed
    assert "<!channel>" not in str(up.slack.calls)

    # Webhook: exactly the two terminal events, signed, with the DESIGN.md payload.
    payloads = up.hooks.verified_payloads(WEBHOOK_SECRET)
    assert len(payloads) == len(up.hooks.requests) == 2
    schema = json.loads((ROOT / "docs" / "webhook-payload.schema.json").read_text("utf-8"))
    for payload in payloads:
        jsonschema.validate(payload, schema)
    by_type = {p["type"]: p for p in payloads}
    assert by_type["imageversion.failed"]["data"] == {
        "account_service_id": ASID,
        "image_version_id": FAILS,
        "label": "US fleet, build 1.4.2",
        "owners": [],
        "previous": {"state_id": 4, "state": "Running", "progress": 40},
        "current": {
            "state_id": 6,
            "state": "Failed",
            "progress": 40,
            "error": ERROR,
            "eta": "2026-11-28T17:10:00Z",
            "failed_count": 1,
            "updated": by_type["imageversion.failed"]["data"]["current"]["updated"],
        },
    }
    assert by_type["imageversion.completed"]["data"]["current"]["state"] == "Complete"
    assert by_type["imageversion.completed"]["data"]["previous"]["state"] == "Running"
    ids = {r.headers["webhook-id"] for r in up.hooks.requests}
    assert len(ids) == 2
    assert all(i.startswith("evt_") for i in ids)


async def test_upstream_errors_create_no_state_event_and_no_delivery(
    upstream: Upstream, tmp_path: Path
) -> None:
    up = upstream
    up.clanforge.script(
        ASID,
        COMPLETES,
        [
            FakeReply.html(502),
            FakeReply.json(200, {"success": False, "error": "internal"}),
            FakeReply(status=500, body=b'{"success": fal'),
        ],
    )
    # FAILS is not scripted: the fake answers 404 for it.
    config = write_config(tmp_path / "notifier.toml", up, tmp_path / "notifier.db")
    proc = await start_notifier(config)
    try:
        await eventually(lambda: up.clanforge.polls(ASID, COMPLETES) >= 3)
        await asyncio.sleep(0.5)
    finally:
        code, output = await stop_notifier(proc)
    assert code == 0, output
    assert up.slack.calls == []
    assert up.hooks.requests == []

    code, out, _ = await run_cli_output(config, "events", env=run_env())
    assert code == 0
    # Only health events (poll failing: 3 failures in a row, and the 404 at once), one per
    # watch; no subscription here asked for them, so nothing was delivered.
    rows = out.strip().splitlines()[1:]
    assert sorted(row.split()[2] for row in rows) == ["watch.poll_failing"] * 2


async def test_each_watch_is_polled_once_per_interval_not_every_other_tick(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Two running jobs polled every 0.5 s (within the default 5 requests a second), watched
    for 4 s: about 8 polls each, none sooner than an interval after the last. A poll schedules
    the next one an interval after it happened, a moment after its tick began; claiming only
    what was already due found each watch a hair short of due one tick on, and polled it every
    second tick (4 each)."""
    running = status_reply(4, 40, created=STARTED, start=STARTED, eta=ETA)
    for ivid in (COMPLETES, FAILS):
        upstream.clanforge.set_status(ASID, ivid, running)
    config = write_config(tmp_path / "notifier.toml", upstream, tmp_path / "notifier.db")
    every_200_ms = "interval_seconds = 0.2\nrunning_interval_seconds = 0.2\n"
    assert every_200_ms in config.read_text()
    config.write_text(config.read_text().replace(every_200_ms, every_200_ms.replace("0.2", "0.5")))
    polls = functools.partial(upstream.clanforge.polls, ASID)
    proc = await start_notifier(config)
    try:
        await eventually(lambda: polls(COMPLETES) >= 2 and polls(FAILS) >= 2)
        before = {ivid: polls(ivid) for ivid in (COMPLETES, FAILS)}
        await asyncio.sleep(4.0)
        during = {ivid: polls(ivid) - before[ivid] for ivid in (COMPLETES, FAILS)}
    finally:
        code, output = await stop_notifier(proc)

    assert code == 0, output
    assert all(6 <= n <= 10 for n in during.values()), during
    times = defaultdict(list)
    for request in upstream.clanforge.requests:
        times[request.path].append(request.time)
    gaps = [round(b - a, 3) for polls in times.values() for a, b in itertools.pairwise(polls)]
    # Arrival times at the fake server carry the event loop's lag on a loaded machine (one late
    # request makes the next gap short by as much: 0.3 s seen at a load of 10 on 2 cores); a
    # watch polled twice in one interval shows a gap near zero, and the count above more polls.
    assert min(gaps) >= 0.2, sorted(gaps)[:5]
