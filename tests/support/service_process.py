"""`notifier run` as a child process, started the way an operator starts it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

Stream = int | IO[Any] | None
"""Where a child's output goes: ``asyncio.subprocess.PIPE``, ``DEVNULL``, a file, or ours."""


async def start_run(
    config: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdout: Stream = None,
    stderr: Stream = None,
) -> asyncio.subprocess.Process:
    """``python -m notifier run --config CONFIG`` with ``env`` as its whole environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "run",
        "--config",
        str(config),
        env=None if env is None else dict(env),
        stdout=stdout,
        stderr=stderr,
    )
