"""`notifier run` killed with SIGKILL again and again while image versions move through their
lifecycles, and stopped with SIGTERM while a send is under way.

The crash test runs on SQLite and (with ``NOTIFIER_TEST_POSTGRES_URL``) PostgreSQL and prints
its figures (kills, events expected and received, duplicates): ``pytest
tests/acceptance/test_crash_safety.py -k sigkill``. ``NOTIFIER_CRASH_KILLS`` (default 12) and
``NOTIFIER_CRASH_SEED`` choose how many kills and which moments.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sized
from pathlib import Path

import pytest

from notifier.store.engine import create_engine
from notifier.store.outbox import list_deliveries
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from tests.support import config_files as toml
from tests.support.service_process import run_cli, start_run, stop_beside
from tests.support.upstream import Upstream, first_arrivals, upstream_servers
from tests.support.waiting import comes_true

pytestmark = pytest.mark.slow

ACCESS_KEY, SECRET_KEY = "ak-crash", "sk-crash"
SLACK_TOKEN = "xoxb-crash-token"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CHANNEL = "C0CRASH"
ASID = 4321
# Six image versions out of step with each other; the last one fails.
IMAGE_VERSIONS = [900_001, 900_002, 900_003, 900_004, 900_005, 900_006]
FAILS = 900_006


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with upstream_servers(ACCESS_KEY, SECRET_KEY, SLACK_TOKEN) as servers:
        yield servers


def write_config(
    path: Path,
    up: Upstream,
    database_url: str,
    *,
    grace: float = 10,
    timeout: float = 1,
    poll_interval: float = 0.25,
    requests_per_second: float = 10,
) -> Path:
    return toml.write_config(
        path,
        toml.database(database_url),
        toml.clanforge(
            up.clanforge.base_url,
            ACCESS_KEY,
            SECRET_KEY,
            timeout_seconds=1,
            requests_per_second=requests_per_second,
        ),
        toml.poll_every(poll_interval),
        toml.table("slack", bot_token="${SLACK_BOT_TOKEN}", base_url=up.slack.base_url),
        toml.LOOPBACK_NETWORK,
        # Crash safety is under test here, not the schedule: retry soon, never give up.
        toml.table(
            "delivery",
            timeout_seconds=timeout,
            interval_seconds=0.2,
            lease_seconds=timeout + 1,
            shutdown_grace_seconds=grace,
            retry_schedule_seconds=[0.2, 0.5, 1],
            max_attempts=1000,
        ),
        toml.tables(
            "subscription",
            [
                {
                    "name": "builds",
                    "slack_channel": CHANNEL,
                    "events": ["imageversion.state_changed"],
                },
                {
                    "name": "chatops",
                    "webhook_url": up.hooks.url,
                    "webhook_secret": WEBHOOK_SECRET,
                    "events": [
                        "imageversion.state_changed",
                        "imageversion.completed",
                        "imageversion.failed",
                    ],
                },
            ],
        ),
        toml.watches(ASID, IMAGE_VERSIONS),
    )


def script_lifecycles(clanforge: FakeClanforge) -> dict[int, list[tuple[str, str]]]:
    """Each image version: Queued, Running 30 %, Running 70 %, then Complete (or Failed), each
    state answered to several polls (a kill between a poll and its commit uses one up, so every
    state is still seen). Returns the webhook events each must produce, in order."""
    expected: dict[int, list[tuple[str, str]]] = {}
    for n, ivid in enumerate(IMAGE_VERSIONS):
        repeat = 6 + 2 * n
        final = (
            status_reply(6, 70, error="Image locked by diffid 42", failed=1)
            if ivid == FAILS
            else status_reply(5, 100)
        )
        clanforge.script(
            ASID,
            ivid,
            [status_reply(3)] * repeat
            + [status_reply(4, 30)] * repeat
            + [status_reply(4, 70)] * repeat
            + [final],
        )
        end, terminal = ("Failed", "failed") if ivid == FAILS else ("Complete", "completed")
        expected[ivid] = [
            ("imageversion.state_changed", "Queued"),
            ("imageversion.state_changed", "Running"),
            ("imageversion.state_changed", end),
            (f"imageversion.{terminal}", end),
        ]
    return expected


def all_queued(clanforge: FakeClanforge) -> None:
    """Every image version Queued upstream, for as long as the test runs."""
    for ivid in IMAGE_VERSIONS:
        clanforge.set_status(ASID, ivid, status_reply(3))


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"


def delivery_to_chatops(database: Path, event_id: str) -> tuple[str, str | None]:
    """(status, lease owner) of the "chatops" webhook's delivery of event ``event_id``."""
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT d.status, d.lease_owner FROM deliveries d "
            "JOIN subscriptions s ON s.id = d.subscription_id "
            "WHERE d.event_id = ? AND s.name = 'chatops'",
            (event_id,),
        ).fetchone()
    assert row is not None, f"no delivery of {event_id} to chatops"
    return row[0], row[1]


async def start(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await start_run(
            config,
            env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TOKEN},
            stdout=out,
            stderr=out,
        )


async def next_one(seen: Sized) -> None:
    """Return within 5 ms of ``seen`` (the requests a fake received) growing, or after 5 s."""
    before = len(seen)
    await comes_true(lambda: len(seen) > before, 5, every=0.005)


async def stopped_cleanly(
    proc: asyncio.subprocess.Process, log: Path, stop: signal.Signals = signal.SIGTERM
) -> str:
    """Stop the service with ``stop``; it must exit 0. Returns its log."""
    proc.send_signal(stop)
    await asyncio.wait_for(proc.wait(), 20)
    output = await asyncio.to_thread(log.read_text)
    assert proc.returncode == 0, output
    return output


async def use_the_cli_meanwhile(config: Path, results: list[tuple[int | None, str]]) -> None:
    """`deliveries list` and `deliveries retry --all-dead` (a write) in a loop; (exit, stderr)."""
    while True:
        for action in (["list", "--status", "pending"], ["retry", "--all-dead"]):
            results.append(
                await run_cli(
                    config,
                    "deliveries",
                    *action,
                    env={**os.environ, "SLACK_BOT_TOKEN": SLACK_TOKEN},
                )
            )


async def outbox(database_url: str) -> list[tuple[str, str, int, str | None]]:
    """(subscription, status, attempts, last error) of every delivery."""
    engine = create_engine(database_url)
    try:
        return [
            (d.subscription, d.status, d.attempts, d.last_error)
            for d in await list_deliveries(engine, limit=10_000)
        ]
    finally:
        await engine.dispose()


async def all_delivered(database_url: str, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while {status for _, status, _, _ in await outbox(database_url)} != {"delivered"}:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def live_messages(slack: FakeSlack) -> dict[int, list[str]]:
    """Per image version, the current text of each top-level message posted about it."""
    found: dict[int, list[str]] = defaultdict(list)
    for message in slack.messages.values():
        if message.thread_ts is None:
            [ivid] = [v for v in IMAGE_VERSIONS if f"build {v}" in message.text]
            found[ivid].append(message.text)
    return found


@pytest.mark.timeout(300)
async def test_sigkill_at_random_moments_loses_no_event_and_resends_keep_the_webhook_id(
    upstream: Upstream, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kills_wanted = int(os.environ.get("NOTIFIER_CRASH_KILLS", "12"))
    seed = int(os.environ.get("NOTIFIER_CRASH_SEED", str(random.randrange(1_000_000))))
    rng = random.Random(seed)
    expected = script_lifecycles(upstream.clanforge)
    expected_count = sum(len(events) for events in expected.values())
    config = write_config(tmp_path / "notifier.toml", upstream, database_url)
    log = tmp_path / "notifier.log"
    hooks, clanforge = upstream.hooks, upstream.clanforge

    def all_arrived() -> bool:
        return sum(len(v) for v in first_arrivals(hooks, WEBHOOK_SECRET).values()) >= expected_count

    kills: Counter[str] = Counter()
    for n in range(kills_wanted):
        proc = await start(config, log)
        # Three kinds of moment, in turn: while a status request is in flight or just answered
        # (between poll and commit), while a webhook is being sent or just was (before the
        # "delivered" mark commits), and at a random time.
        moment = ("poll", "send", "random")[n % 3]
        if moment == "poll":
            await next_one(clanforge.requests)
            await asyncio.sleep(rng.uniform(0, 0.03))
        elif moment == "send":
            await next_one(hooks.requests)
            await asyncio.sleep(rng.uniform(0, 0.03))
        else:
            await asyncio.sleep(rng.uniform(0.3, 2.0))
        if proc.returncode is None:
            proc.kill()
            kills[moment] += 1
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]

    proc = await start(config, log)
    # Operators use the CLI on the same SQLite file while the service writes: never "locked".
    cli_results: list[tuple[int | None, str]] = []
    operator = asyncio.create_task(use_the_cli_meanwhile(config, cli_results))
    try:
        arrived = await comes_true(all_arrived, 120)
        arrived = arrived and await comes_true(
            lambda: (
                all(
                    len(texts) == 1 and ("Complete" in texts[0] or "Failed" in texts[0])
                    for texts in live_messages(upstream.slack).values()
                )
                and len(live_messages(upstream.slack)) == len(IMAGE_VERSIONS)
            ),
            30,
        )
        # A live message can show the final state before that event's own delivery is sent (a
        # progress refresh renders the newest status), so the outbox may still hold it: stop
        # only once it is empty, or the stop would leave that delivery pending on purpose.
        arrived = arrived and await all_delivered(database_url, 30)
    finally:
        await stop_beside(proc, operator)
    output = log.read_text()
    assert arrived, (
        f"seed {seed}",
        live_messages(upstream.slack),
        [(c.method, c.error) for c in upstream.slack.calls if c.error][:10],
        [d for d in await outbox(database_url) if d[1] != "delivered"],
        first_arrivals(hooks, WEBHOOK_SECRET),
        output[-3000:],
    )
    assert cli_results
    assert [r for r in cli_results if r[0] != 0 or r[1]] == []
    assert proc.returncode == 0, output[-3000:]

    # Every expected event arrived, in order per image version.
    assert first_arrivals(hooks, WEBHOOK_SECRET) == expected
    # Every request is signed; a resend carries the same webhook-id and the same body.
    verified = hooks.verified_payloads(WEBHOOK_SECRET)
    assert len(verified) == len(hooks.requests)
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in hooks.requests:
        bodies[request.headers["webhook-id"]].add(request.body)
    assert all(len(b) == 1 for b in bodies.values())
    duplicates = len(hooks.requests) - len(bodies)
    # One live message per channel and image version, showing where the job ended.
    messages = live_messages(upstream.slack)
    assert {ivid: len(texts) for ivid, texts in messages.items()} == dict.fromkeys(
        IMAGE_VERSIONS, 1
    )
    assert "database is locked" not in output
    assert {status for _, status, _, _ in await outbox(database_url)} == {"delivered"}

    lookups = sum(1 for c in upstream.slack.calls if c.method == "conversations.history")
    with capsys.disabled():
        print(
            f"\ncrash test on {database_url.split('+')[0]} (seed {seed}): "
            f"{sum(kills.values())} SIGKILLs "
            f"({kills['poll']} around a poll, {kills['send']} around a send, "
            f"{kills['random']} at random), {expected_count} webhook events expected, "
            f"{len(bodies)} received, {duplicates} duplicate deliveries (same webhook-id), "
            f"{sum(len(t) for t in messages.values())} Slack live messages for "
            f"{len(IMAGE_VERSIONS)} image versions ({lookups} looked up after a crash between "
            f"post and commit); {len(cli_results)} CLI runs meanwhile, none failed"
        )
    assert sum(kills.values()) >= kills_wanted * 2 // 3


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_sigterm_or_sigint_finishes_the_send_under_way_and_exits_0(
    upstream: Upstream, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    hooks = upstream.hooks
    all_queued(upstream.clanforge)
    hooks.respond_next(204, delay=1.5)  # the first webhook is slow (under timeout_seconds)
    config = write_config(tmp_path / "notifier.toml", upstream, sqlite_url(tmp_path), timeout=5)
    log = tmp_path / "notifier.log"
    proc = await start(config, log)
    assert await comes_true(lambda: len(hooks.requests) >= 1, 30), log.read_text()

    output = await stopped_cleanly(proc, log, stop_signal)
    assert "notifier stopped" in output
    first_id = hooks.requests[0].headers["webhook-id"]
    assert delivery_to_chatops(tmp_path / "notifier.db", first_id) == ("delivered", None)
    with sqlite3.connect(tmp_path / "notifier.db") as db:
        leased = db.execute(
            "SELECT (SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL)"
            " + (SELECT count(*) FROM watches WHERE lease_owner IS NOT NULL)"
        ).fetchone()
    assert leased == (0,)


async def test_sigterm_during_a_tick_stops_without_starting_the_polls_still_spread_out(
    upstream: Upstream, tmp_path: Path
) -> None:
    clanforge = upstream.clanforge
    all_queued(clanforge)
    # A 10 s tick whose six polls are spread over 3 s of it (and paced at 1 a second), with a
    # grace period that would let the whole tick finish.
    config = write_config(
        tmp_path / "notifier.toml",
        upstream,
        sqlite_url(tmp_path),
        grace=30,
        poll_interval=10,
        requests_per_second=1,
    )
    log = tmp_path / "notifier.log"
    proc = await start(config, log)
    assert await comes_true(lambda: clanforge.polls(ASID, IMAGE_VERSIONS[0]) >= 1, 30), (
        log.read_text()
    )

    output = await stopped_cleanly(proc, log)
    assert "did not finish" not in output
    polled = [ivid for ivid in IMAGE_VERSIONS if clanforge.polls(ASID, ivid)]
    assert 1 <= len(polled) < len(IMAGE_VERSIONS), output
    with sqlite3.connect(tmp_path / "notifier.db") as db:
        seen = {
            ivid
            for (ivid,) in db.execute(
                "SELECT w.image_version_id FROM watches w JOIN job_status s ON s.watch_id = w.id"
            )
        }
        leased = db.execute("SELECT count(*) FROM watches WHERE lease_owner IS NOT NULL").fetchone()
    # What was polled was written; the rest is free for the next replica, due as it was.
    assert seen == set(polled)
    assert leased == (0,)


async def test_sigterm_past_the_grace_period_releases_the_lease_and_the_resend_keeps_the_id(
    upstream: Upstream, tmp_path: Path
) -> None:
    hooks = upstream.hooks
    all_queued(upstream.clanforge)
    hooks.respond_next(204, delay=10)  # far longer than the grace period
    config = write_config(tmp_path / "notifier.toml", upstream, sqlite_url(tmp_path), grace=0.2)
    log = tmp_path / "notifier.log"
    proc = await start(config, log)
    assert await comes_true(lambda: len(hooks.requests) >= 1, 30), log.read_text()
    slow_id = hooks.requests[0].headers["webhook-id"]

    output = await stopped_cleanly(proc, log)
    assert "did not finish within 0.2 s" in output
    assert delivery_to_chatops(tmp_path / "notifier.db", slow_id) == ("pending", None)

    # Restarted, it sends that one again at once (no lease to wait out), with the same id.
    proc = await start(config, log)
    try:
        assert await comes_true(
            lambda: [r.headers["webhook-id"] for r in hooks.requests].count(slow_id) >= 2, 30
        ), log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
