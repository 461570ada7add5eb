"""`notifier run` as a child process, started the way an operator starts it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
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
    return await start_notifier_command(config, "run", env=env, stdout=stdout, stderr=stderr)


async def start_notifier_command(
    config: Path,
    *argv: str,
    env: Mapping[str, str] | None = None,
    stdout: Stream = None,
    stderr: Stream = None,
) -> asyncio.subprocess.Process:
    """``python -m notifier ARGV --config CONFIG`` started, with ``env`` (when given) as its
    whole environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        *argv,
        "--config",
        str(config),
        env=None if env is None else dict(env),
        stdout=stdout,
        stderr=stderr,
    )


async def run_cli(
    config: Path, *argv: str, env: Mapping[str, str] | None = None
) -> tuple[int | None, str]:
    """One operator command, ``python -m notifier ARGV --config CONFIG``: (exit code, stderr).
    What it prints on stdout is not kept (see :func:`run_cli_output`).

    Cancelling it kills the child, which may already have exited on its own in the meantime.
    """
    code, _, err = await _run_cli(config, argv, env, stdout=asyncio.subprocess.DEVNULL)
    return code, err


async def run_cli_output(
    config: Path, *argv: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """:func:`run_cli`, keeping what the command printed: (exit code, stdout, stderr)."""
    code, out, err = await _run_cli(config, argv, env, stdout=asyncio.subprocess.PIPE)
    assert code is not None
    return code, out, err


async def _run_cli(
    config: Path, argv: tuple[str, ...], env: Mapping[str, str] | None, *, stdout: int
) -> tuple[int | None, str, str]:
    proc = await start_notifier_command(
        config, *argv, env=env, stdout=stdout, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode, (out or b"").decode(), err.decode()


async def status_page_url(proc: asyncio.subprocess.Process) -> tuple[str, bytes]:
    """Read a child started with ``stderr=PIPE`` up to the line announcing its status page:
    (the page's URL, all it printed so far). Fails the test if it exits first."""
    assert proc.stderr is not None
    seen = b""
    while not (found := re.search(rb"status page at (http://\S+/)", seen)):
        line = await proc.stderr.readline()
        assert line, seen.decode()
        seen += line
    return found.group(1).decode(), seen


async def stop_beside(proc: asyncio.subprocess.Process, *beside: asyncio.Task[None]) -> None:
    """Cancel what ran beside the service (operators at the CLI), then stop the service as
    an operator does (SIGTERM) and wait for it to exit."""
    for task in beside:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 30)
