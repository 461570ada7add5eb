"""Waiting for what a running service does, without sleeping longer than it takes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def comes_true(condition: Callable[[], bool], within: float, *, every: float = 0.05) -> bool:
    """Whether ``condition`` holds within ``within`` seconds, looked at every ``every``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def eventually(
    condition: Callable[[], bool], within: float = 20.0, *, every: float = 0.05
) -> None:
    """Return once ``condition`` holds; fail the test if it does not within ``within`` seconds."""
    if not await comes_true(condition, within, every=every):
        raise AssertionError("condition not met in time")
