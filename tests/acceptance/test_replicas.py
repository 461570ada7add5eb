"""Three `notifier run` processes on one PostgreSQL database share 300 watches and one outbox:
every event is delivered, none twice, no image version is polled twice within an interval, and a
replica killed with SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from notifier.store.engine import create_engine
from notifier.store.tables import EventRow
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support import config_files as toml
from tests.support.replicas import Replicas, replicas_running
from tests.support.upstream import first_arrivals
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ACCESS_KEY, SECRET_KEY = "ak-replicas", "sk-replicas"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ASID = 4321
WATCHES = 300
INTERVAL = 0.5
EXPECTED_PER_WATCH = [
    ("imageversion.state_changed", "Queued"),
    ("imageversion.state_changed", "Running"),
    ("imageversion.state_changed", "Complete"),
    ("imageversion.completed", "Complete"),
]


def image_versions() -> range:
    return range(700_000, 700_000 + WATCHES)


def write_config(
    path: Path, database_url: str, fake: FakeClanforge, hooks: WebhookReceiver
) -> Path:
    return toml.write_config(
        path,
        toml.database(database_url),
        toml.busy_clanforge(fake.base_url, ACCESS_KEY, SECRET_KEY, 200),
        toml.poll_every(INTERVAL),
        toml.LOOPBACK_NETWORK,
        toml.table("delivery", timeout_seconds=1, max_concurrency=16, interval_seconds=0.2),
        toml.tables(
            "subscription",
            [
                {
                    "name": "chatops",
                    "webhook_url": hooks.url,
                    "webhook_secret": WEBHOOK_SECRET,
                    "events": ["imageversion.state_changed", "imageversion.completed"],
                }
            ],
        ),
        toml.watches(ASID, image_versions()),
    )


@dataclass
class Fleet:
    """The fake Clanforge every replica polls, the receiver of their webhooks, and where their
    configuration file goes."""

    clanforge: FakeClanforge
    hooks: WebhookReceiver
    folder: Path

    def replicas(self, database_url: str, count: int) -> AbstractAsyncContextManager[Replicas]:
        """``count`` replicas on ``database_url`` for the block (see ``replicas_running``)."""
        config = self.folder / "notifier.toml"
        write_config(config, database_url, self.clanforge, self.hooks)
        return replicas_running(config, count)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """Every watched job goes Queued, Running 50 %, Complete."""
    async with (
        FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
        WebhookReceiver() as hooks,
    ):
        for ivid in image_versions():
            clanforge.script(
                ASID, ivid, [status_reply(3), status_reply(4, 50), status_reply(5, 100)]
            )
        yield Fleet(clanforge, hooks, tmp_path)


def received_events(hooks: WebhookReceiver) -> dict[str, tuple[int, str, str]]:
    """webhook-id -> (image version, type, state) of every verified request."""
    events = {}
    for request, payload in zip(
        hooks.requests, hooks.verified_payloads(WEBHOOK_SECRET), strict=True
    ):
        data = payload["data"]
        events[request.headers["webhook-id"]] = (
            data["image_version_id"],
            payload["type"],
            data["current"]["state"],
        )
    return events


def assert_every_event_arrived_in_order(hooks: WebhookReceiver) -> None:
    per_watch = first_arrivals(hooks, WEBHOOK_SECRET)
    assert set(per_watch) == set(image_versions())
    wrong = {ivid: events for ivid, events in per_watch.items() if events != EXPECTED_PER_WATCH}
    assert wrong == {}


def assert_no_image_version_polled_twice_within_an_interval(clanforge: FakeClanforge) -> None:
    times: dict[str, list[float]] = defaultdict(list)
    for request in clanforge.requests:
        times[request.path].append(request.time)
    too_close = [
        (path, round(b - a, 3))
        for path, polls in times.items()
        for a, b in itertools.pairwise(polls)
        if b - a < INTERVAL * 0.9
    ]
    assert too_close == []


async def test_three_replicas_share_the_work_without_double_sends(
    fleet: Fleet, postgres_url: str
) -> None:
    hooks = fleet.hooks
    async with fleet.replicas(postgres_url, 3) as replicas:
        await eventually(lambda: len(hooks.requests) >= WATCHES * len(EXPECTED_PER_WATCH), 60)
        await asyncio.sleep(1.0)  # anything extra that would arrive (it must not)
    results = replicas.results
    assert [code for code, _ in results] == [0, 0, 0], results

    ids = Counter(r.headers["webhook-id"] for r in hooks.requests)
    assert [i for i, n in ids.items() if n > 1] == []
    assert len(ids) == WATCHES * len(EXPECTED_PER_WATCH)
    assert_every_event_arrived_in_order(hooks)
    assert_no_image_version_polled_twice_within_an_interval(fleet.clanforge)
    # Each replica did part of the polling (each logs the ticks in which it saw events).
    assert all("polled " in err for _, err in results), [err[-500:] for _, err in results]


async def test_a_replica_killed_mid_run_loses_nothing(fleet: Fleet, postgres_url: str) -> None:
    hooks = fleet.hooks
    loop = asyncio.get_running_loop()
    async with fleet.replicas(postgres_url, 3) as replicas:
        await eventually(lambda: len(hooks.requests) >= WATCHES, 60)
        killed = replicas.processes[0]
        killed.send_signal(signal.SIGKILL)
        await killed.wait()
        killed_at = loop.time()
        # Watch leases last interval + 3 x timeout (6.5 s), delivery leases 2 x timeout + 5 s (7 s).
        await eventually(lambda: completed(hooks) == set(image_versions()), 45)
        await asyncio.sleep(1.0)  # deliveries of the last events, in order behind the completion
        takeover = loop.time() - killed_at
    results = replicas.results
    assert results[0][0] == -signal.SIGKILL
    assert [code for code, _ in results[1:]] == [0, 0], results

    # Nothing the replicas detected is lost: every recorded event reached the receiver, and
    # a resend after the kill carries the same webhook-id and the same content.
    recorded = await recorded_event_ids(postgres_url)
    assert set(received_events(hooks)) == recorded
    # A poll answer that died with the killed replica can hide an intermediate state (the
    # next poll sees a later one), never reorder or repeat one.
    assert_every_watch_saw_its_lifecycle_in_order(hooks)
    print(
        f"\n3 replicas, {WATCHES} watches: {len(recorded)} events, {len(hooks.requests)} "
        f"webhook requests, {len(hooks.requests) - len(recorded)} resent with the same id, "
        f"all completed {takeover:.1f} s after the kill"
    )


def completed(hooks: WebhookReceiver) -> set[int]:
    return {ivid for ivid, kind, _ in received_events(hooks).values() if kind.endswith("completed")}


async def recorded_event_ids(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(EventRow.id).where(
                    EventRow.type.in_(["imageversion.state_changed", "imageversion.completed"])
                )
            )
            return {row.id for row in rows}
    finally:
        await engine.dispose()


def assert_every_watch_saw_its_lifecycle_in_order(hooks: WebhookReceiver) -> None:
    per_watch = first_arrivals(hooks, WEBHOOK_SECRET)

    def in_order(events: list[tuple[str, str]]) -> bool:
        rest = iter(EXPECTED_PER_WATCH)
        return all(event in rest for event in events) and events[-1] == EXPECTED_PER_WATCH[-1]

    assert {ivid: events for ivid, events in per_watch.items() if not in_order(events)} == {}


async def read_until_running(proc: asyncio.subprocess.Process) -> str:
    """Its log up to the line saying it runs (schema and config are settled by then)."""
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await proc.stderr.readline()).decode()
        if not line:
            raise AssertionError("replica exited before running:\n" + "".join(lines))
        lines.append(line)
        if "notifier running as" in line:
            return "".join(lines)


async def test_two_replicas_starting_together_migrate_and_sync_once(
    fleet: Fleet, empty_postgres_url: str
) -> None:
    async with fleet.replicas(empty_postgres_url, 2) as replicas:
        logs = await asyncio.wait_for(
            asyncio.gather(*(read_until_running(proc) for proc in replicas.processes)), timeout=30
        )
    results = replicas.results
    assert [code for code, _ in results] == [0, 0], results

    migrated = [log for log in logs if "database schema upgraded from empty to" in log]
    waited = [log for log in logs if "database schema up to date at" in log]
    assert (len(migrated), len(waited)) == (1, 1), logs
    synced = [log for log in logs if f"config synced: {WATCHES} watches added" in log]
    found = [log for log in logs if "config synced: 0 watches added, 0 updated, 0 retired" in log]
    assert (len(synced), len(found)) == (1, 1), logs
