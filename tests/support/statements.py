"""What a piece of code sent the database, recorded from SQLAlchemy's own engine events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class Statements:
    """What the tick sent the database, from SQLAlchemy's own events."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sql: list[str] = []
        self.sent: list[tuple[str, Any]] = []  # as the driver got them: SQL and one row of binds
        self.commits = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.sql.append(" ".join(statement.split()).upper())
        self.sent.append((statement, parameters[0] if many else parameters))

    def _on_commit(self, conn: Any) -> None:
        self.commits += 1

    def writes_to(self, table: str) -> list[str]:
        return [
            s
            for s in self.sql
            if s.startswith((f"UPDATE {table.upper()} ", f"INSERT INTO {table.upper()} "))
        ]


@contextmanager
def sent_statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine sends inside the block, with its parameters, as the driver
    got them."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def rows_selected(engine: AsyncEngine, sent: Sequence[tuple[str, Any]]) -> int:
    """Rows the SELECTs among ``sent`` (:func:`sent_statements`) return when run again now: how
    many rows some code read, counted without timing anything."""
    rows = 0
    async with engine.connect() as conn:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("SELECT"):
                rows += len((await conn.exec_driver_sql(statement, parameters)).all())
    return rows
