"""What every benchmark shares: the servers process, a service configuration, seeded watches."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, make_url, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from notifier.config import Settings, parse_config
from notifier.core.clock import utc_now
from notifier.store.tables import WATCHES

ASID = 1000
REPOSITORY = Path(__file__).resolve().parent.parent
# A fixed secret so the receiver side can verify signatures (24 random-looking bytes).
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a benchmark fixture


@dataclass(frozen=True, slots=True)
class ServerUrls:
    clanforge: str
    webhook: str
    control: str


class Remote:
    """Drives the servers process through its control app."""

    def __init__(self, session: aiohttp.ClientSession, urls: ServerUrls) -> None:
        self._session = session
        self.urls = urls

    async def _call(self, method: str, path: str, **params: Any) -> Any:
        async with self._session.request(
            method, f"{self.urls.control}/control/{path}", params=params
        ) as response:
            response.raise_for_status()
            return await response.json()

    async def set_state(self, state: int, ivid: int | None = None) -> float:
        """Flip one job (or all); returns the servers' monotonic time of the flip."""
        params: dict[str, Any] = {"state": state}
        if ivid is not None:
            params["ivid"] = ivid
        return float((await self._call("POST", "state", **params))["at"])

    async def first_poll(self, ivid: int, after: float) -> float | None:
        at = (await self._call("GET", "first-poll", ivid=ivid, after=repr(after)))["at"]
        return None if at is None else float(at)

    async def arrivals(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "arrivals")
        return result

    async def polls(self) -> int:
        return int((await self._call("GET", "polls"))["polls"])

    async def clear(self) -> None:
        await self._call("POST", "clear")

    async def cpu_seconds(self) -> float:
        """CPU time the servers process has used so far: beside a run's wall time, how busy the
        fake Clanforge kept its core."""
        return float((await self._call("GET", "cpu"))["seconds"])


@asynccontextmanager
async def servers(watches: int, *, record: bool = False) -> AsyncIterator[Remote]:
    """Start ``python -m benchmarks.servers`` and yield a remote for it; stop it on exit."""
    command = [sys.executable, "-m", "benchmarks.servers", "--watches", str(watches)]
    command += ["--asid", str(ASID)]
    if record:
        command.append("--record")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPOSITORY,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        if not line:
            raise RuntimeError("the benchmark servers process exited before it was ready")
        urls = ServerUrls(**json.loads(line))
        async with aiohttp.ClientSession() as session:
            yield Remote(session, urls)
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def workspace(watches: int, *, record: bool = False) -> AsyncIterator[tuple[Remote, Path]]:
    """The servers process (:func:`servers`) and a scratch folder for the service's database,
    both gone on exit: what every benchmark runs in."""
    async with servers(watches, record=record) as remote:
        with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
            yield remote, Path(tmp)


def status_urls(urls: ServerUrls, count: int) -> list[str]:
    """The status URLs of image versions 1..count under :data:`ASID`, as the bare loops fetch
    them: the same requests the service's client makes for the seeded watches."""
    base = f"{urls.clanforge}/cfp/v1/imageversion/"
    return [f"{base}{ivid}/status?accountserviceid={ASID}" for ivid in range(1, count + 1)]


def sqlite_url(database: Path) -> str:
    return f"sqlite+aiosqlite:///{database}"


@asynccontextmanager
async def fresh_database(workdir: Path, name: str, postgres: str | None) -> AsyncIterator[str]:
    """The database URL for one measurement: an SQLite file in the scratch folder, or, when
    ``postgres`` (a ``postgresql+asyncpg://`` URL) is given, a database of its own on that
    server, created here and dropped on exit."""
    if postgres is None:
        yield sqlite_url(workdir / f"{name}.db")
        return
    database = f"notifier_bench_{name.replace('-', '_')}_{secrets.token_hex(4)}"
    admin = create_async_engine(postgres, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        try:
            yield make_url(postgres).set(database=database).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.dispose()


def service_config(
    database_url: str,
    urls: ServerUrls,
    *,
    concurrency: int,
    interval: float = 30,
    subscriptions: bool = True,
) -> str:
    """TOML for the service under test: every due watch claimed in one tick, no cap, no spread."""
    text = f"""
[database]
url = "{database_url}"

[clanforge]
base_url = "{urls.clanforge}"
access_key = "ak"
secret_key = "sk"
max_concurrency = {concurrency}
requests_per_second = 1000000

[poll]
interval_seconds = {interval}
running_interval_seconds = {interval}
# Polls all start at once: the bare loop does not pace itself either (the default, 0.5, trickles
# a tick's polls over half the interval on purpose, which is waiting, not cost).
spread = 0

[network]
allow_private = ["127.0.0.0/8"]

[delivery]
max_concurrency = {concurrency}

[log]
level = "WARNING"
"""
    if subscriptions:
        text += f"""
[[subscription]]
name = "bench"
webhook_url = "{urls.webhook}"
webhook_secret = "{WEBHOOK_SECRET}"
events = ["imageversion.state_changed"]
"""
    return text


def service_settings(database_url: str, urls: ServerUrls, **options: Any) -> Settings:
    return parse_config(service_config(database_url, urls, **options), env={})


async def seed_watches(engine: AsyncEngine, count: int) -> None:
    """Watch image versions 1..count, all due now (setup, not measured)."""
    now = utc_now()
    rows = [
        {
            "account_service_id": ASID,
            "image_version_id": ivid,
            "label": f"bench {ivid}",
            "source": "cli",
            "active": True,
            "next_poll_at": now,
            "poll_errors": 0,
            "created_at": now,
        }
        for ivid in range(1, count + 1)
    ]
    async with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(WATCHES), rows[start : start + 5000])


async def make_all_due(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(WATCHES).values(next_poll_at=utc_now()))


Run = Callable[[], Awaitable[None]]
# Each layer's run over N items by name, bottom to top, and by layer what must happen before its
# run and is not part of it; opened for (N, concurrency).
LayerRuns = Callable[[int, int], AbstractAsyncContextManager[tuple[dict[str, Run], dict[str, Run]]]]


async def cpu_by_layer(
    layers: LayerRuns, count: int, *, concurrency: int, rounds: int
) -> dict[str, Any]:
    """CPU per item (µs) of each layer's run over ``count`` items, bottom to top: the
    event-loop thread's, and the whole process's (the SQLite driver's thread too). The order of
    the layers alternates from round to round; the median of the rounds is reported."""
    loop_cpu: dict[str, list[float]] = {}
    process_cpu: dict[str, list[float]] = {}
    async with layers(count, concurrency) as (runs, prepare):
        for round_ in range(rounds):
            for name in runs if round_ % 2 == 0 else reversed(list(runs)):
                if name in prepare:
                    await prepare[name]()
                thread, process = time.thread_time(), time.process_time()
                await runs[name]()
                loop_cpu.setdefault(name, []).append((time.thread_time() - thread) * 1e6 / count)
                process_cpu.setdefault(name, []).append(
                    (time.process_time() - process) * 1e6 / count
                )
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "event_loop_cpu_us": {k: round(statistics.median(loop_cpu[k]), 1) for k in runs},
        "process_cpu_us": {k: round(statistics.median(process_cpu[k]), 1) for k in runs},
    }


async def in_workers(work: Callable[[int], Awaitable[object]], count: int, n: int) -> None:
    """``work(0)`` .. ``work(count - 1)``, ``n`` at a time: the send slots of every layer."""
    pending = iter(range(count))

    async def worker() -> None:
        for item in pending:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(n)))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the value at or below which ``fraction`` of samples fall."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
