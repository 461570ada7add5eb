"""The shared turns of :mod:`notifier.core.pacing` in the database, for several replicas.

A take is one statement, an upsert that moves ``next_at`` on and returns it: the row lock
(PostgreSQL) or the write lock (SQLite) makes two replicas' takes follow each other, so the turns
they get never overlap. One round trip a batch of turns, in a transaction of its own, short.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.pacing import MemoryPaceLedger, PaceLedger
from notifier.store.engine import ConflictInsert, conflict_insert, is_postgres
from notifier.store.tables import PACE

__all__ = ["SqlPaceLedger", "pace_ledger_for"]


def pace_ledger_for(engine: AsyncEngine) -> PaceLedger:
    """Where the shared turns live: the database with PostgreSQL (several replicas), this
    process with SQLite (one process)."""
    return SqlPaceLedger(engine) if is_postgres(engine) else MemoryPaceLedger()


class SqlPaceLedger:
    """:class:`notifier.core.pacing.PaceLedger` over the service's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = is_postgres(engine)

    def _greatest(self, a: ColumnElement[float], b: float) -> ColumnElement[float]:
        # SQLite's two-argument max() is its scalar GREATEST.
        return func.greatest(a, b) if self._postgres else func.max(a, b)

    def _insert(self) -> ConflictInsert:
        return conflict_insert(self._engine, PACE)

    async def take(
        self, key: str, count: int, interval: float, tolerance: float, now: float
    ) -> float:
        # The same arithmetic as notifier.core.pacing.reserve, in one atomic statement.
        span = count * interval
        statement = (
            self._insert()
            .values(key=key, next_at=now - tolerance + span)
            .on_conflict_do_update(
                index_elements=[PACE.c.key],
                set_={"next_at": self._greatest(PACE.c.next_at, now - tolerance) + span},
            )
            .returning(PACE.c.next_at)
        )
        async with self._engine.begin() as conn:
            end = (await conn.execute(statement)).scalar_one()
        return float(end)

    async def push(self, key: str, until: float) -> None:
        insert = self._insert()
        statement = insert.values(key=key, next_at=until).on_conflict_do_update(
            index_elements=[PACE.c.key],
            set_={"next_at": self._greatest(PACE.c.next_at, until)},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
