"""The Slack live message's progress refreshes, end to end: one replica's real poller,
dispatcher and Slack sink, stepped by hand against fake Clanforge, fake Slack and a webhook
receiver, on a real database. For the refresh tests and for what refreshes cost the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.clock import utc_now
from notifier.core.status import RUNNING
from tests.support.stepped import (
    ASID,
    CHANNEL,
    IVID,
    SECRET,
    SteppedReplica,
    pending,
    stepped_replica,
)

__all__ = [
    "ASID",
    "CHANNEL",
    "ETA",
    "IVID",
    "LATE",
    "SECRET",
    "Harness",
    "harness",
    "pending",
    "running_message_posted",
]

LATE = "C0LATE"
# Far enough out that small moves stay under the 600 s eta_changed step.
ETA = utc_now().replace(microsecond=0) + timedelta(hours=2)

Harness = SteppedReplica[Callable[[], datetime]]
"""The replica on the real clock: retries come due as time passes."""


@pytest.fixture
async def harness(engine: AsyncEngine) -> AsyncIterator[Harness]:
    async with stepped_replica(engine, clock=utc_now, channels=(CHANNEL, LATE), eta=ETA) as replica:
        yield replica


async def running_message_posted(harness: Harness) -> str:
    """First sighting at Running 30%: the live message is posted; returns its ts."""
    await harness.poll(RUNNING, 30)
    await harness.drain()
    [post] = harness.slack.top_level_posts(CHANNEL)
    assert "Running 30%" in post.args["text"]
    return str(post.answer["ts"])
