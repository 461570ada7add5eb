"""What the in-process service tests against the fakes share: the fakes, and hourly ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from notifier.testing.fake_clanforge import FakeClanforge
from notifier.testing.fake_slack import FakeSlack

BUILDS_CHANNEL = "C0BUILDS"


def hourly_ticks(poll: str = "") -> str:
    """``[poll]`` and ``[detect]`` for a service whose hand clock moves an hour a tick: every
    watch is due at each tick, and the timing detectors (which an hour would set off) are off,
    tested apart. ``poll`` adds keys to ``[poll]``."""
    return f"""
[poll]
interval_seconds = 1
running_interval_seconds = 1
spread = 0
{poll}

[detect]
stall_after_seconds = 0
waiting_stall_after_seconds = 0
estimate_eta = false
"""


@pytest.fixture
async def clanforge() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(access_key="ak", secret_key="sk") as fake:
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels={BUILDS_CHANNEL}) as fake:
        yield fake
