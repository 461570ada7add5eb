"""Several `notifier run` processes on one database, started and stopped as an operator would."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.service_process import start_run


async def start_replicas(
    config: Path, count: int, env: Mapping[str, str] | None = None
) -> list[asyncio.subprocess.Process]:
    """``count`` replicas of ``notifier run --config CONFIG``; their stderr kept for stop_all."""
    return [
        await start_run(
            config,
            env=dict(os.environ) if env is None else env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]


async def stop_all(replicas: list[asyncio.subprocess.Process]) -> list[tuple[int | None, str]]:
    """SIGTERM to every replica still running, then each one's exit code and stderr."""
    results = []
    for proc in replicas:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in replicas:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        results.append((proc.returncode, err.decode()))
    return results


@dataclass
class Replicas:
    """Replicas started by :func:`replicas_running`; ``results`` once the block has ended."""

    processes: list[asyncio.subprocess.Process]
    results: list[tuple[int | None, str]] = field(default_factory=list)
    """Each replica's exit code and stderr, in the order they were started."""


@asynccontextmanager
async def replicas_running(
    config: Path, count: int, env: Mapping[str, str] | None = None
) -> AsyncIterator[Replicas]:
    """``count`` replicas (see :func:`start_replicas`) for the block; stopped however it
    ends (see :func:`stop_all`)."""
    replicas = Replicas(await start_replicas(config, count, env))
    try:
        yield replicas
    finally:
        replicas.results = await stop_all(replicas.processes)
