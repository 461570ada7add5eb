"""Shared builders and fixtures.

Store tests take the ``engine`` fixture and run once on a SQLite file and once on the real
PostgreSQL named by ``NOTIFIER_TEST_POSTGRES_URL``, each test in a database of its own cloned
from a migrated template (a copied file; a PostgreSQL database made with ``TEMPLATE`` and
dropped afterwards). Without that variable the PostgreSQL variant is
skipped, and ``.ci/run`` fails when it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.events import STATE_CHANGED, Event
from notifier.core.lease import Lease
from notifier.core.poll_plan import ClaimedWatch, PollPlan, PollPolicy
from notifier.core.status import STATE_NAMES, FetchedStatus, JobStatus
from notifier.core.subscriptions import (
    SlackChannelSubscription,
    SlackWebhookSubscription,
    Subscription,
    SubscriptionKind,
    WebhookSubscription,
)
from notifier.core.timing import DetectPolicy, Tracking
from notifier.polling.budget import BudgetSchedule
from notifier.polling.poller import Poller, StatusSource
from notifier.store.codec import MEMORY_COLUMNS, memory_to_values, status_to_json
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from notifier.store.polling import SqlWatchStore
from notifier.store.subscriptions import add_subscription, load_active_subscriptions
from notifier.store.tables import DELIVERIES, EVENTS, JOB_STATUS, SUBSCRIPTIONS, WATCHES
from notifier.store.watch_store import Claim, PollResults, PollWrite, Ranker, WatchStore
from notifier.store.watches import add_watch
from notifier.testing.fake_clanforge import FakeClanforge
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.api import ApiServer, running_api
from tests.support.clock import T0 as T0
from tests.support.clock import HandClock
from tests.support.statements import rows_selected as rows_selected

POSTGRES_URL_VAR = "NOTIFIER_TEST_POSTGRES_URL"
# Set by .ci/run: a missing PostgreSQL fails the run instead of skipping its tests.
REQUIRE_POSTGRES_VAR = "NOTIFIER_TEST_REQUIRE_POSTGRES"


# ---------------------------------------------------------------- builders


def make_status(
    state_id: int | None = 3,
    progress: int = 0,
    *,
    image_version_id: int = 567890,
    eta: datetime | None = None,
    error: str | None = None,
    failed_count: int = 0,
    updated: datetime | None = T0,
    state: str | None = None,
) -> JobStatus:
    return JobStatus(
        image_version_id=image_version_id,
        state_id=state_id,
        state=state or STATE_NAMES.get(state_id or 0, "Unknown"),
        progress=progress,
        eta=eta,
        error=error,
        failed_count=failed_count,
        created=T0 - timedelta(minutes=5),
        started=None if state_id in (1, 2, 3) else T0 - timedelta(minutes=1),
        updated=updated,
    )


def status_row(status: JobStatus) -> dict[str, Any]:
    """The ``job_status`` columns of a status with fresh timing memory, as the poller writes."""
    return dict(zip(MEMORY_COLUMNS, memory_to_values(status, Tracking()), strict=True))


def make_event(
    current: JobStatus | None = None,
    previous: JobStatus | None = None,
    *,
    type: str = STATE_CHANGED,
    event_id: str = "evt_01JDEMO0000000000000000000",
    label: str = "EU fleet, build 1.4.2",
    account_service_id: int = 1234,
    occurred_at: datetime = T0,
) -> Event:
    current = current or make_status(4, 40)
    return Event(
        id=event_id,
        type=type,
        occurred_at=occurred_at,
        account_service_id=account_service_id,
        image_version_id=current.image_version_id,
        label=label,
        previous=previous,
        current=current,
    )


def make_subscription(
    id: int = 1, kind: SubscriptionKind = "webhook", **fields: Any
) -> Subscription:
    """A subscription of ``kind`` with a made-up name and destination unless ``fields`` say."""
    fields.setdefault("name", f"sub{id}")
    if kind == "slack_channel":
        return SlackChannelSubscription(id=id, **{"channel": "C0TEST", **fields})
    if kind == "slack_webhook":
        return SlackWebhookSubscription(id=id, **{"host": "https://hooks.slack.com", **fields})
    return WebhookSubscription(id=id, **{"url": "https://hooks.test/x", **fields})


def stored_target(subscription: Subscription) -> str:
    """What the ``subscriptions.target`` column holds for ``subscription``."""
    if subscription.kind == "slack_channel":
        return subscription.channel
    if subscription.kind == "slack_webhook":
        return subscription.host
    return subscription.url


def event_ids(prefix: str = "evt") -> Callable[[], str]:
    """Predictable event ids (evt_0001, evt_0002, ...), in the order events are made; another
    ``prefix`` for a second series that must not collide with the first."""
    counter = count(1)
    return lambda: f"{prefix}_{next(counter):04d}"


POLL = PollPolicy(interval_seconds=30, running_interval_seconds=10)


class StatusBook:
    """A status source that answers from a mapping (image version -> status), as Clanforge
    would: each reply has a digest of what it says, and a reply with the digest the poller
    already knows comes back unparsed."""

    def __init__(self, observed: Mapping[int, JobStatus] | None = None) -> None:
        self.observed: dict[int, JobStatus] = dict(observed or {})

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        status = self.observed[image_version_id]
        digest = hashlib.blake2b(repr(status).encode(), digest_size=16).digest()
        return FetchedStatus(digest, None if digest == known_digest else status)


class WritesSeen:
    """A watch store that keeps the plans each of its writes took effect on: what a test of the
    poller asserts on besides the tables."""

    def __init__(self, store: WatchStore) -> None:
        self._store = store
        self.plans: list[PollPlan] = []

    async def claim_due(
        self, lease: Lease, limit: int, due_by: datetime, rank: Ranker | None = None
    ) -> Claim:
        return await self._store.claim_due(lease, limit, due_by, rank)

    async def load_memory(self, watches: Sequence[ClaimedWatch]) -> list[ClaimedWatch]:
        return await self._store.load_memory(watches)

    async def record_polls(self, claim: Claim, results: PollResults, now: datetime) -> PollWrite:
        written = await self._store.record_polls(claim, results, now)
        self.plans.extend(written.plans)
        return written

    async def release(self, owner: str) -> None:
        await self._store.release(owner)

    async def recent_state_changes(self, limit: int) -> list[Event]:
        return await self._store.recent_state_changes(limit)


def hand_poller(
    store: WatchStore,
    source: StatusSource,
    clock: Callable[[], datetime],
    *,
    subscriptions: Callable[[], Awaitable[Sequence[Subscription]]],
    ids: Callable[[], str] | None = None,
    poll: PollPolicy = POLL,
    detect: DetectPolicy | None = None,
    owner: str = "replica-a",
    budget: BudgetSchedule | None = None,
) -> Poller:
    """The real poller on a hand clock: polls spread over nothing, so a tick runs at once."""
    return Poller(
        store,
        source,
        subscriptions,
        poll=replace(poll, spread=0.0),
        detect=detect,
        max_concurrency=4,
        claim_limit=1000,
        batch_size=1000,
        lease=timedelta(seconds=60),
        owner=owner,
        clock=clock,
        on_committed=lambda: None,
        event_ids=ids or event_ids(),
        budget=budget,
    )


async def poll_once(
    engine: AsyncEngine,
    observed: Mapping[int, JobStatus],
    now: datetime = T0,
    ids: Callable[[], str] | None = None,
) -> list[PollPlan]:
    """One tick of the real poller at ``now`` over the real store, 'fetching' from ``observed``
    (image version -> status); returns the plans it wrote."""
    store = WritesSeen(SqlWatchStore(engine))

    async def subscriptions() -> Sequence[Subscription]:
        return await load_active_subscriptions(engine, {})

    poller = hand_poller(
        store, StatusBook(observed), lambda: now, subscriptions=subscriptions, ids=ids
    )
    await poller.tick()
    return store.plans


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tables fit ``COLUMNS`` when it is set, and a developer's shell or pytest-xdist's
    workers (``COLUMNS=80``) set it: the cells a test reads would be cut short. A test of the
    fitting sets its own."""
    monkeypatch.delenv("COLUMNS", raising=False)


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated template database for this run, or None when no PostgreSQL was given."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        yield None
        return
    name = f"notifier_tmpl_{secrets.token_hex(4)}"

    async def create() -> None:
        await _admin(url, f'CREATE DATABASE "{name}"')
        engine = create_engine(_with_database(url, name))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    try:
        yield name
    finally:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _fresh_postgres_database(template: str | None) -> Iterator[str]:
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        if os.environ.get(REQUIRE_POSTGRES_VAR):
            pytest.fail(f"{POSTGRES_URL_VAR} is not set but {REQUIRE_POSTGRES_VAR} is")
        pytest.skip(f"{POSTGRES_URL_VAR} is not set")
    name = f"notifier_test_{secrets.token_hex(4)}"
    create = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    asyncio.run(_admin(url, create))
    try:
        yield _with_database(url, name)
    finally:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_template: str | None) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database that is dropped after the test."""
    yield from _fresh_postgres_database(postgres_template or "")


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with no schema at all, dropped after the test."""
    yield from _fresh_postgres_database(None)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once a run: migrating one takes about 0.35 s, copying it 1 ms."""
    path = tmp_path_factory.mktemp("sqlite-template") / "notifier.db"

    async def create() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    # The last connection's close folds the write-ahead log into the file: the file is whole.
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _migrated_sqlite(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "notifier.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        return _migrated_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str | None:
    """For contract tests of a store interface: a database URL for the SQL implementation, or
    None for the in-memory one that must behave alike."""
    if request.param == "memory":
        return None
    if request.param == "sqlite":
        return _migrated_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database engine: every store test runs on SQLite and on PostgreSQL."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- HTTP server (admin API, page)


async def seed_watch(
    engine: AsyncEngine,
    history: Sequence[tuple[datetime, JobStatus]],
    *,
    account_service_id: int = 1234,
    label: str = "EU fleet, build 1.4.2",
    event_ids: Sequence[str] = (),
) -> int:
    """A watch whose job went through ``history``: one state_changed event per entry, and the
    last entry as its current status. Returns the watch id."""
    first_at = history[0][0] if history else T0
    image_version_id = history[0][1].image_version_id if history else 567890
    watch_id = await add_watch(
        engine, account_service_id, image_version_id, label, "config", first_at
    )
    previous: JobStatus | None = None
    async with engine.begin() as conn:
        for i, (at, status) in enumerate(history):
            await conn.execute(
                EVENTS.insert().values(
                    id=event_ids[i] if i < len(event_ids) else f"evt_{watch_id}_{i}",
                    watch_id=watch_id,
                    type=STATE_CHANGED,
                    account_service_id=account_service_id,
                    image_version_id=image_version_id,
                    label=label,
                    previous=None if previous is None else status_to_json(previous),
                    current=status_to_json(status),
                    detail=None,
                    occurred_at=at,
                )
            )
            previous = status
        if history:
            at, status = history[-1]
            await conn.execute(
                JOB_STATUS.insert().values(
                    watch_id=watch_id, observed_at=at, state_since=at, **status_row(status)
                )
            )
    return watch_id


async def add_hand_watches(
    engine: AsyncEngine, image_version_ids: Sequence[int], *, account_service_id: int = 1234
) -> None:
    """Watches added at run time (``notifier watch add``), in one statement: a large watch list
    that code reading only what it needs must not touch."""
    async with engine.begin() as conn:
        await conn.execute(
            WATCHES.insert(),
            [
                {
                    "account_service_id": account_service_id,
                    "image_version_id": ivid,
                    "label": f"by hand {ivid}",
                    "source": "cli",
                    "active": True,
                    "next_poll_at": T0,
                    "poll_errors": 0,
                    "created_at": T0,
                }
                for ivid in image_version_ids
            ],
        )


async def add_subscription_row(
    engine: AsyncEngine,
    name: str = "chatops",
    target: str = "https://h.test/",
    *,
    kind: SubscriptionKind = "webhook",
    source: str = "config",
    filters: Mapping[str, Any] | None = None,
) -> int:
    """A subscription stored the way ``notifier subscription add`` (source "api") or the config
    sync (source "config") stores it; returns its id."""
    return await add_subscription(
        engine,
        name=name,
        kind=kind,
        target=target,
        filters=dict(filters or {}),
        source=source,
        now=T0,
    )


async def seed_delivery(
    engine: AsyncEngine,
    event_id: str,
    watch_id: int,
    subscription_id: int,
    *,
    status: str = "pending",
    lease_owner: str | None = None,
    last_error: str | None = None,
    attempts: int = 0,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            DELIVERIES.insert().values(
                event_id=event_id,
                subscription_id=subscription_id,
                watch_id=watch_id,
                status=status,
                attempts=attempts,
                next_attempt_at=T0,
                last_error=last_error,
                lease_owner=lease_owner,
                lease_until=None if lease_owner is None else T0 + timedelta(minutes=1),
                created_at=T0,
            )
        )


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[ApiServer]:
    async with running_api(engine) as server:
        yield server


# ---------------------------------------------------------------- fakes and clients


@pytest.fixture
def clock() -> HandClock:
    """The service's clock, moved by hand from T0."""
    return HandClock(T0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for code under test; a fake that hangs fails the test in seconds."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client_session:
        yield client_session


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1 that answers 204 unless told otherwise."""
    async with WebhookReceiver() as running:
        yield running


@pytest.fixture
async def fake() -> AsyncIterator[FakeClanforge]:
    """A fake Clanforge that takes the default test credentials (``ak`` / ``sk``)."""
    async with FakeClanforge() as server:
        yield server


def service_config(
    database_url: str,
    clanforge_url: str,
    *,
    clanforge_extra: str = "",
    sections: str = "",
    watches: list[tuple[int, int]] = (),  # type: ignore[assignment]
    access_key: str = "ak",
    secret_key: str = "sk",  # noqa: S107 - the fake's test credentials
) -> str:
    """A whole configuration file for an in-process service against a fake Clanforge."""
    watch_tables = "".join(
        f"\n[[watch]]\naccount_service_id = {asid}\nimage_version_id = {ivid}\n"
        for asid, ivid in watches
    )
    return f"""
[database]
url = "{database_url}"

[clanforge]
base_url = "{clanforge_url}"
access_key = "{access_key}"
secret_key = "{secret_key}"
timeout_seconds = 0.5
{clanforge_extra}

{sections}
{watch_tables}
"""


# ---------------------------------------------------------------- outbox seeding


async def seed_subscription(engine: AsyncEngine, subscription: Subscription) -> Subscription:
    """Store ``subscription`` as the config sync would; returns it with the database id."""
    async with engine.begin() as conn:
        result = await conn.execute(
            SUBSCRIPTIONS.insert().values(
                name=subscription.name,
                kind=subscription.kind,
                target=stored_target(subscription),
                filters={},
                active=True,
                source="config",
                created_at=T0,
            )
        )
    key = result.inserted_primary_key
    assert key is not None
    return replace(subscription, id=int(key[0]))


async def seed_watch_with_event(
    engine: AsyncEngine,
    status: JobStatus,
    *,
    kind: SubscriptionKind = "webhook",
    event_id: str = "evt_01JDEMO0000000000000000000",
) -> tuple[Subscription, int]:
    """EU fleet watched (from the config), a subscription of ``kind``, and one event of
    ``status`` with its pending delivery; returns the subscription and the watch id."""
    watch = await add_watch(engine, 1234, status.image_version_id, "EU fleet", "config", T0)
    subscription = await seed_subscription(engine, make_subscription(kind=kind))
    await seed_events(engine, watch, [subscription.id], [make_event(status, event_id=event_id)])
    return subscription, watch


async def seed_builds_and_hook(
    engine: AsyncEngine, channel: str, hook_url: str, secret: str
) -> list[Subscription]:
    """The "builds" Slack channel subscription and the "hook" webhook signed with ``secret``,
    stored as the config sync stores them."""
    builds = await seed_subscription(
        engine, SlackChannelSubscription(id=0, name="builds", channel=channel)
    )
    hook = await seed_subscription(
        engine, WebhookSubscription(id=0, name="hook", url=hook_url, signing_secrets=(secret,))
    )
    return [builds, hook]


async def seed_events(
    engine: AsyncEngine, watch_id: int, subscription_ids: list[int], events: list[Event]
) -> None:
    """What a poll tick writes: the events, one pending delivery each, the newest status."""
    async with engine.begin() as conn:
        for event in events:
            await conn.execute(
                EVENTS.insert().values(
                    id=event.id,
                    watch_id=watch_id,
                    type=event.type,
                    account_service_id=event.account_service_id,
                    image_version_id=event.image_version_id,
                    label=event.label,
                    previous=None if event.previous is None else status_to_json(event.previous),
                    current=status_to_json(event.current),
                    detail=None,
                    occurred_at=event.occurred_at,
                )
            )
            for subscription_id in subscription_ids:
                await conn.execute(
                    DELIVERIES.insert().values(
                        event_id=event.id,
                        subscription_id=subscription_id,
                        watch_id=watch_id,
                        status="pending",
                        attempts=0,
                        next_attempt_at=T0,
                        created_at=T0,
                    )
                )
        await conn.execute(delete(JOB_STATUS).where(JOB_STATUS.c.watch_id == watch_id))
        await conn.execute(
            JOB_STATUS.insert().values(
                watch_id=watch_id,
                observed_at=T0,
                state_since=T0,
                **status_row(events[-1].current),
            )
        )
