"""`notifier run` as a child process, with its database seeded first and its memory watched."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import ServerUrls, seed_watches, service_config, sqlite_url
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade


@dataclass
class RunningService:
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark of the process's resident set (VmHWM)."""
        return _status_kb(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


async def prepare_database(database: Path, watches: int) -> None:
    engine = create_engine(sqlite_url(database))
    try:
        await upgrade(engine)
        await seed_watches(engine, watches)
    finally:
        await engine.dispose()


@asynccontextmanager
async def notifier_run(
    workdir: Path,
    urls: ServerUrls,
    *,
    watches: int,
    concurrency: int,
    interval: float,
    events: str = "imageversion.state_changed",
) -> AsyncIterator[RunningService]:
    """Seed ``watches`` watches, start ``python -m notifier run``, stop it with SIGTERM on exit."""
    database = workdir / "run.db"
    await prepare_database(database, watches)
    config = workdir / "notifier.toml"
    text = service_config(sqlite_url(database), urls, concurrency=concurrency, interval=interval)
    config.write_text(text.replace('"imageversion.state_changed"', f'"{events}"'))
    async with running(config, workdir / "notifier-run.log") as service:
        yield service


@asynccontextmanager
async def running(config: Path, log_path: Path) -> AsyncIterator[RunningService]:
    """``python -m notifier run --config CONFIG``, its output in ``log_path``, stopped with
    SIGTERM on exit."""
    # The service's own log (APScheduler warns of skipped ticks when one tick outlasts the
    # interval, as it should at 100,000 watches) goes to a file beside the database.
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "run",
        "--config",
        str(config),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield RunningService(process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
