"""A whole service whose Clanforge budget binds: its settings, ticks on a hand clock, and the
history a previous process left in the events table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from notifier.config import Settings
from notifier.core.status import QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support.api import make_settings
from tests.support.clock import HandClock


def bound_settings(
    database_url: str,
    upstream: FakeClanforge,
    watches: Sequence[tuple[int, int]],
    *,
    requests_per_second: float,
    interval_seconds: float,
    **sections: Any,
) -> Settings:
    """``watches`` (account service, image version) of ``upstream`` polled every
    ``interval_seconds`` whatever their state, at ``requests_per_second``, with no HTTP server;
    ``sections`` adds to these (a section given here is merged into this one).

    Polls start at once rather than spread over the tick (``spread = 0``): ticks driven on a hand
    clock then take only the rate limiter's time."""
    quick: dict[str, Any] = {
        "database": {"url": database_url},
        "clanforge": {
            "base_url": upstream.base_url,
            "access_key": "ak",
            "secret_key": "sk",
            "requests_per_second": requests_per_second,
        },
        "poll": {
            "interval_seconds": interval_seconds,
            "running_interval_seconds": interval_seconds,
            "spread": 0,
        },
        "watch": [{"account_service_id": asid, "image_version_id": ivid} for asid, ivid in watches],
        "server": None,
    }
    for name, value in sections.items():
        base = quick.get(name)
        quick[name] = {**base, **value} if isinstance(base, dict) else value
    return make_settings(**quick)


async def tick_on(service: Service, clock: HandClock, ticks: int) -> None:
    """``ticks`` poll ticks, the hand clock moved on by one tick interval after each: every
    watch polled in one is due again in the next."""
    step = service.settings.poll.tick_seconds
    for _ in range(ticks):
        await service.tick()
        clock.advance(step)


async def leave_past_waits(
    database_url: str,
    clanforge: FakeClanforge,
    account_service_id: int,
    image_version_ids: Sequence[int],
    wait_seconds: float,
    clock: HandClock,
) -> None:
    """A previous process on ``database_url`` that saw these jobs Queued, then Running
    ``wait_seconds`` later: its events table holds one wait of that length per job.

    Its watches come from its own configuration, so a later process with another one retires
    them; their events stay."""
    watches = [(account_service_id, ivid) for ivid in image_version_ids]
    queued_at = clock()
    for _, ivid in watches:
        clanforge.set_status(
            account_service_id,
            ivid,
            status_reply(QUEUED, 0, created=queued_at, updated=queued_at),
        )
    settings = bound_settings(
        database_url,
        clanforge,
        watches,
        # Every job polled in each tick: the budget does not bind for this process.
        requests_per_second=len(watches) * 2,
        interval_seconds=1,
    )
    async with Service(settings, clock=clock) as service:
        await service.tick()
        started = clock.advance(wait_seconds)
        for _, ivid in watches:
            clanforge.set_status(
                account_service_id,
                ivid,
                status_reply(
                    RUNNING,
                    0,
                    eta=started + timedelta(minutes=30),
                    created=queued_at,
                    updated=started,
                    start=started,
                ),
            )
        await service.tick()
