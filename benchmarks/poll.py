"""Poll overhead: the service's real tick against a bare aiohttp loop, and the SQL it takes.

For each N, in one run and alternating which goes first, the service's tick (claim, fetch,
detect, write, enqueue, through :meth:`notifier.service.Service.tick`) and a bare loop fetch the
same N status URLs from the fake Clanforge in the servers process, at the same concurrency.
The bare loop is the raw HTTP limit: one session, ``concurrency`` workers, read the body, nothing
else. Two scenarios: ``unchanged`` (every reply equals the stored status) and ``changed`` (every
job flips state, so each watch writes its status, an event and a delivery).

SQL is counted with a ``before_cursor_execute`` listener (each executemany counts once, as it is
one round trip to the driver) and commits with a ``commit`` listener. Beside the wall-clock ratio
(the target's), the CPU time of this process per side (fastest repetition) gives a CPU ratio: the
wall ratio swings with whatever else the machine runs, the CPU ratio much less.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event

from benchmarks.harness import (
    Remote,
    fresh_database,
    make_all_due,
    median,
    seed_watches,
    service_settings,
    status_urls,
    workspace,
)
from benchmarks.servers import STATES
from notifier.clanforge.client import USER_AGENT, client_timeout
from notifier.metrics import BATCH_PHASES
from notifier.service import Service

_VERB_TABLE = re.compile(r"^\s*(\w+)\s+(?:OR \w+ )?(?:INTO |FROM )?(\w+)?", re.IGNORECASE)
_REPOSITORY = Path(__file__).resolve().parents[1]


class SqlCounter:
    """Counts statements, commits and status-row writes on one engine while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.statements = 0
        self.commits = 0
        self.status_rows_written = 0
        self.kinds: Counter[str] = Counter()

    def reset(self) -> None:
        self.statements = 0
        self.commits = 0
        self.status_rows_written = 0
        self.kinds = Counter()

    def attach(self, sync_engine: Any) -> None:
        event.listen(sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(sync_engine, "commit", self._on_commit)

    def _on_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if not self.active:
            return
        self.statements += 1
        match = _VERB_TABLE.match(statement)
        verb = match.group(1).upper() if match else "?"
        table = (match.group(2) or "") if match else ""
        kind = f"{verb} {table}".strip()
        if verb == "SELECT":
            kind = "SELECT"
        self.kinds[kind] += 1
        if table.lower() == "job_status" and verb in ("INSERT", "UPDATE"):
            self.status_rows_written += len(parameters) if executemany else 1

    def _on_commit(self, conn: Any) -> None:
        if self.active:
            self.commits += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "commits": self.commits,
            "status_rows_written": self.status_rows_written,
            "by_kind": dict(sorted(self.kinds.items())),
        }


async def bare_fetch(session: aiohttp.ClientSession, urls: Sequence[str], concurrency: int) -> None:
    pending = iter(urls)

    async def worker() -> None:
        for url in pending:
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"bare fetch got {response.status} for {url}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def bare_session(concurrency: int, service: Service) -> aiohttp.ClientSession:
    """Configured as the service's Clanforge session is: same limits, timeout and headers."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout(service.settings.clanforge.options()),
        headers={
            "User-Agent": USER_AGENT,
            "Authorization": aiohttp.encode_basic_auth("ak", "sk"),
            "Accept": "application/json",
        },
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def phase_seconds(service: Service) -> dict[str, float]:
    """Seconds the service's batches have spent in each phase so far, from its own metrics
    (``notifier_poll_batch_seconds``)."""
    registry = service.metrics.registry
    return {
        phase: registry.get_sample_value("notifier_poll_batch_seconds_sum", {"phase": phase}) or 0.0
        for phase in BATCH_PHASES
    }


async def _timed_tick(service: Service, expected: int) -> float:
    started = time.perf_counter()
    summary = await service.tick()
    elapsed = time.perf_counter() - started
    if summary is None or summary.polled != expected or summary.failed:
        raise RuntimeError(f"the service's tick did not poll {expected} watches: {summary}")
    return elapsed


async def measure_poll(
    remote: Remote,
    count: int,
    *,
    concurrency: int,
    repetitions: int,
    database_url: str,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    settings = service_settings(database_url, remote.urls, concurrency=concurrency)
    urls = status_urls(remote.urls, count)
    results: dict[str, Any] = {"watches": count, "concurrency": concurrency}
    async with Service(settings) as service:
        engine = service.engine
        counter = SqlCounter()
        counter.attach(engine.sync_engine)
        await seed_watches(engine, count)
        flips = 0
        async with bare_session(concurrency, service) as bare:
            # Warm up both sides; the service's first tick also stores every first sighting.
            await remote.set_state(STATES[0])
            await bare_fetch(bare, urls, concurrency)
            await _timed_tick(service, count)
            for scenario in ("unchanged", "changed"):
                bare_times: list[float] = []
                service_times: list[float] = []
                bare_cpu: list[float] = []
                service_cpu: list[float] = []
                phases: dict[str, list[float]] = {phase: [] for phase in BATCH_PHASES}
                servers_busy: dict[str, list[float]] = {"bare": [], "service": []}
                for rep in range(repetitions):
                    if scenario == "changed":
                        flips += 1
                        await remote.set_state(STATES[flips % 2])
                    await make_all_due(engine)
                    order = ("bare", "service") if rep % 2 == 0 else ("service", "bare")
                    for side in order:
                        servers_cpu = await remote.cpu_seconds()
                        cpu = time.process_time()
                        if side == "bare":
                            started = time.perf_counter()
                            await bare_fetch(bare, urls, concurrency)
                            bare_times.append(time.perf_counter() - started)
                            bare_cpu.append(time.process_time() - cpu)
                        else:
                            counter.reset()
                            counter.active = True
                            before = phase_seconds(service)
                            service_times.append(await _timed_tick(service, count))
                            service_cpu.append(time.process_time() - cpu)
                            counter.active = False
                            after = phase_seconds(service)
                            for phase in BATCH_PHASES:
                                phases[phase].append(after[phase] - before[phase])
                        took = (bare_times if side == "bare" else service_times)[-1]
                        servers_busy[side].append((await remote.cpu_seconds() - servers_cpu) / took)
                ratios = [s / b for s, b in zip(service_times, bare_times, strict=True)]
                db = counter.snapshot()
                db["statements_per_1000_watches"] = round(db["statements"] * 1000 / count, 2)
                results[scenario] = {
                    "bare_seconds": [round(t, 4) for t in bare_times],
                    "service_seconds": [round(t, 4) for t in service_times],
                    "bare_per_second": round(count / median(bare_times), 1),
                    "service_per_second": round(count / median(service_times), 1),
                    "ratio": round(median(ratios), 3),
                    # The driver process's CPU (all its threads) per side: on a shared machine
                    # the wall ratio swings with the neighbours' load; this one much less.
                    "bare_cpu_us_per_watch": round(min(bare_cpu) * 1e6 / count, 1),
                    "service_cpu_us_per_watch": round(min(service_cpu) * 1e6 / count, 1),
                    "cpu_ratio": round(min(service_cpu) / min(bare_cpu), 3),
                    # Where the tick's wall time went, by the service's own batch timings
                    # (medians), beside the bare loop's time per fetch.
                    "phases_us_per_watch": {
                        phase: round(median(seconds) * 1e6 / count, 1)
                        for phase, seconds in phases.items()
                    },
                    "bare_us_per_watch": round(median(bare_times) * 1e6 / count, 1),
                    # The servers process's CPU over each side's wall time: near 1 beside the
                    # bare loop, the fake Clanforge is as costly as the client, and this 2-core
                    # machine has no core left to hide the service's database work on.
                    "servers_busy": {
                        side: round(median(shares), 2) for side, shares in servers_busy.items()
                    },
                    "db_per_tick": db,
                }
            if profile_to is not None:
                await _profile_tick(service, count, remote, flips + 1, profile_to)
    return results


async def _profile_tick(
    service: Service, count: int, remote: Remote, flip: int, target: Path
) -> None:
    """One changed-state tick under pyinstrument, its text report written to ``target``."""
    from pyinstrument import Profiler  # the optional `bench` extra

    await remote.set_state(STATES[flip % 2])
    await make_all_due(service.engine)
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    with profiler:
        await _timed_tick(service, count)
    report = profiler.output_text(unicode=False, color=False, show_all=False)
    # Paths relative to the repository, so a committed profile does not name the machine's checkout.
    report = report.replace(f"{_REPOSITORY}{os.sep}", "")
    await asyncio.to_thread(target.write_text, report)


async def run_poll(
    counts: Sequence[int],
    *,
    concurrency: int,
    repetitions: int,
    profile_dir: Path | None,
    postgres: str | None = None,
) -> list[dict[str, Any]]:
    """The poll overhead at each N, on SQLite, or on the PostgreSQL server ``postgres`` names."""
    results = []
    async with workspace(max(counts)) as (remote, workdir):
        for count in counts:
            profile_to = None
            if profile_dir is not None and count == max(counts):
                profile_to = profile_dir / f"profile-poll-tick-{count}.txt"
            async with fresh_database(workdir, f"poll-{count}", postgres) as database_url:
                results.append(
                    await measure_poll(
                        remote,
                        count,
                        concurrency=concurrency,
                        repetitions=repetitions,
                        database_url=database_url,
                        profile_to=profile_to,
                    )
                )
    return results
