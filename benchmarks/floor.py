"""The store's floor: what SQLite alone costs for the statements a real poll tick sends.

A tick at N watches runs against the fake Clanforge with every statement it sends to the
database recorded (SQL and parameters, as the driver got them). The database file as it was
before the tick is then copied, and the recorded statements are replayed on the copy through
a plain ``sqlite3`` connection in this thread: no SQLAlchemy, no aiosqlite thread, no Python of
ours, one transaction. The fastest replay, per watch and as a fraction of a bare aiohttp fetch
measured in the same run (wall against wall, and CPU against CPU), is the part of the poll
overhead ratio that no change to our Python can remove while a tick writes what it writes: for
a changed watch its status, its event, its delivery and its schedule, with the claim and the
memory it reads.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event

from benchmarks.harness import (
    make_all_due,
    seed_watches,
    service_settings,
    sqlite_url,
    status_urls,
    workspace,
)
from benchmarks.poll import bare_fetch, bare_session
from benchmarks.servers import STATES
from notifier.service import Service

SCENARIOS = ("unchanged", "changed")

Recorded = tuple[str, Any, bool]  # SQL, parameters, executemany


class _Recorder:
    """A ``before_cursor_execute`` listener keeping each statement as the driver gets it."""

    def __init__(self) -> None:
        self.statements: list[Recorded] = []

    def __call__(
        self, conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.statements.append((sql, parameters, many))


def _replay(
    database: Path, statements: Sequence[Recorded]
) -> tuple[float, float, dict[str, float]]:
    """Seconds for the whole replay (wall, then this thread's CPU), and per kind of statement
    (its first three words)."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        kinds: dict[str, float] = {}
        started, cpu = time.perf_counter(), time.thread_time()
        connection.execute("BEGIN IMMEDIATE")
        for sql, parameters, many in statements:
            if sql.startswith(("BEGIN", "COMMIT")):
                continue  # the replay is one transaction: a floor, not a copy
            one = time.perf_counter()
            if many:
                connection.executemany(sql, parameters)
            else:
                connection.execute(sql, parameters).fetchall()
            kind = " ".join(sql.split()[:3])
            kinds[kind] = kinds.get(kind, 0.0) + time.perf_counter() - one
        connection.execute("COMMIT")
        return time.perf_counter() - started, time.thread_time() - cpu, kinds
    finally:
        connection.close()


async def run_floor(count: int, *, concurrency: int, replays: int) -> dict[str, Any]:
    """Per scenario: the bare fetch, the tick, and the fastest raw replay of its statements."""
    results: dict[str, Any] = {"watches": count, "concurrency": concurrency, "replays": replays}
    async with workspace(count) as (remote, workdir):
        database = workdir / "floor.db"
        settings = service_settings(sqlite_url(database), remote.urls, concurrency=concurrency)
        urls = status_urls(remote.urls, count)
        async with Service(settings) as service, bare_session(concurrency, service) as bare:
            engine = service.engine
            await seed_watches(engine, count)
            await remote.set_state(STATES[0])
            await service.tick()  # first sightings
            await make_all_due(engine)
            await service.tick()  # and the digests behind them: from now on, no news is quiet
            for scenario in SCENARIOS:
                bare_seconds, bare_cpu = [], []
                for _ in range(3):
                    started, cpu = time.perf_counter(), time.process_time()
                    await bare_fetch(bare, urls, concurrency)
                    bare_seconds.append(time.perf_counter() - started)
                    bare_cpu.append(time.process_time() - cpu)
                await make_all_due(engine)
                if scenario == "changed":
                    await remote.set_state(STATES[1])
                async with engine.connect() as conn:
                    # Everything in the main file, so that a copy of it is the whole database
                    # (on the driver's connection: not inside SQLAlchemy's transaction).
                    driver = (await conn.get_raw_connection()).driver_connection
                    assert driver is not None
                    await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                before = workdir / f"before-{scenario}.db"
                shutil.copy(database, before)
                record = _Recorder()
                event.listen(engine.sync_engine, "before_cursor_execute", record)
                started = time.perf_counter()
                summary = await service.tick()
                tick_seconds = time.perf_counter() - started
                event.remove(engine.sync_engine, "before_cursor_execute", record)
                if summary is None or summary.polled != count:
                    raise RuntimeError(f"the {scenario} tick did not poll {count}: {summary}")
                runs = []
                for _ in range(replays):
                    copy = workdir / f"replay-{scenario}.db"
                    shutil.copy(before, copy)
                    runs.append(_replay(copy, record.statements))
                fastest, _, kinds = min(runs, key=lambda run: run[0])
                bare_us = min(bare_seconds) * 1e6 / count
                replay_us = fastest * 1e6 / count
                # CPU against CPU: steadier on a busy machine than wall time, and the
                # replay is nothing but CPU in one thread.
                bare_cpu_us = min(bare_cpu) * 1e6 / count
                replay_cpu_us = min(run[1] for run in runs) * 1e6 / count
                results[scenario] = {
                    "events": summary.events,
                    "statements": len(record.statements),
                    "bare_us_per_fetch": round(bare_us, 1),
                    "tick_us_per_watch": round(tick_seconds * 1e6 / count, 1),
                    "replay_us_per_watch": round(replay_us, 2),
                    "replay_median_us_per_watch": round(
                        statistics.median(r[0] for r in runs) * 1e6 / count, 2
                    ),
                    "floor_of_ratio": round(1 + replay_us / bare_us, 3),
                    "bare_cpu_us_per_fetch": round(bare_cpu_us, 1),
                    "replay_cpu_us_per_watch": round(replay_cpu_us, 2),
                    "floor_of_cpu_ratio": round(1 + replay_cpu_us / bare_cpu_us, 3),
                    "replay_us_by_statement": {
                        kind: round(seconds * 1e6 / count, 2)
                        for kind, seconds in sorted(kinds.items(), key=lambda kv: -kv[1])
                    },
                }
    return results
