"""Auto-discovery: watch every image version being rolled out under the opted-in account services.

Pipelines create image versions and roll them out without anyone adding a watch; Clanforge's
install-status endpoint lists the incomplete installs of an account service, each naming its
``target_imageversionid``. Each one not watched yet becomes a watch with source ``discovered``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.upstream_errors import UpstreamError
from notifier.store.watches import add_discovered_watches

log = logging.getLogger(__name__)


class InstallSource(Protocol):
    async def fetch_install_targets(self, account_service_id: int) -> list[int]: ...


class Discovery:
    def __init__(
        self,
        engine: AsyncEngine,
        source: InstallSource,
        account_service_ids: Sequence[int],
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._source = source
        self._account_service_ids = tuple(account_service_ids)
        self._clock = clock
        self._failing: set[int] = set()

    async def run_once(self) -> list[tuple[int, int]]:
        """One look at every opted-in account service; returns the (asid, image version) added.

        A failing account service is logged when it starts failing and when it works again, not
        on every round, and does not keep the others from being looked at.
        """
        added: list[tuple[int, int]] = []
        for asid in self._account_service_ids:
            try:
                targets = await self._source.fetch_install_targets(asid)
            except UpstreamError as error:
                if asid not in self._failing:
                    log.warning("discovery for account service %d failed: %s", asid, error.message)
                self._failing.add(asid)
                continue
            if asid in self._failing:
                log.info("discovery for account service %d works again", asid)
                self._failing.discard(asid)
            new = await add_discovered_watches(self._engine, asid, targets, self._clock())
            for ivid in new:
                log.info("discovered image version %d of account service %d", ivid, asid)
            added.extend((asid, ivid) for ivid in new)
        return added
