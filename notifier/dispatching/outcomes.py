"""The outcome writer: records finished sends many per transaction (group commit).

One task writes, so that SQLite's single write lock is taken once per batch rather than once per
send. While sends are still queued outcomes wait for a batch's worth; the last send of the queue,
or a short wait, writes what is there, so that a send that went out is not left unrecorded for
long (a crash would send it again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from notifier.store.outbox_store import Outbox, Outcome

log = logging.getLogger(__name__)


class OutcomeWriter:
    def __init__(
        self,
        outbox: Outbox,
        owner: str,
        *,
        batch: int,
        wait: float,
        on_recorded: Callable[[Sequence[Outcome]], None],
    ) -> None:
        self._outbox = outbox
        self._owner = owner
        self._batch = batch
        self._wait = wait
        self._on_recorded = on_recorded
        self._pending: list[Outcome] = []
        self._ready = asyncio.Event()
        self._closing = False
        # Counts the batches taken: a wait armed for an earlier batch is void.
        self._batches = 0

    def add(self, outcome: Outcome, *, last: bool) -> None:
        """Queue ``outcome`` for the next write; ``last``: no send is queued behind it, so
        nothing is worth waiting for."""
        if not self._pending:
            asyncio.get_running_loop().call_later(self._wait, self._waited, self._batches)
        self._pending.append(outcome)
        if last or len(self._pending) >= self._batch:
            self._ready.set()

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._run(), name="delivery-outcomes")

    async def close(self, writer: asyncio.Task[None]) -> None:
        """Let the writer finish the transaction it is in, then record what is left.

        Not a cancel: a writer cancelled mid-transaction would drop the outcomes of sends that
        went out, and they would go out again.
        """
        self._closing = True
        self._ready.set()
        try:
            await writer
        finally:
            self._closing = False
            await self._flush()

    async def _run(self) -> None:
        while not self._closing:
            await self._ready.wait()
            self._ready.clear()
            await self._flush()

    def _waited(self, batch: int) -> None:
        if batch == self._batches:
            self._ready.set()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._batches += 1
        try:
            await self._outbox.record_outcomes(self._owner, batch)
        except Exception:
            # Not recorded: the leases run out and the deliveries go out again (same id).
            log.exception("could not record %d delivery outcome(s)", len(batch))
        finally:
            self._on_recorded(batch)
