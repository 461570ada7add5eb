"""What a piece of code sent the database, recorded from SQLAlchemy's own engine events."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class Statements:
    """Every statement the engine sends from now on, and its commits, until :meth:`stop` (or
    the end of its ``with`` block).

    ``sent`` holds each statement with its parameters as the driver got them (a list of rows
    for an executemany); the other attributes are views of it for what tests ask: the SQL
    normalized (``sql``), each statement runnable again with one row of binds (``runnable``),
    the writes to a table, the last statement of a kind.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.commits = 0
        self._many: list[bool] = []
        self._engine = engine
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        self.sent.append((statement, parameters))
        self._many.append(many)

    def _on_commit(self, conn: Any) -> None:
        self.commits += 1

    def stop(self) -> None:
        """Record nothing more."""
        event.remove(self._engine.sync_engine, "before_cursor_execute", self._on_execute)
        event.remove(self._engine.sync_engine, "commit", self._on_commit)

    def __enter__(self) -> Statements:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def sql(self) -> list[str]:
        """Each statement on one line, in capitals: for matching by verb and table."""
        return [" ".join(statement.split()).upper() for statement, _ in self.sent]

    @property
    def runnable(self) -> list[tuple[str, Any]]:
        """Each statement with one row of its binds (the first of an executemany), as it can be
        run again (``EXPLAIN``)."""
        return [
            (statement, parameters[0] if many else parameters)
            for (statement, parameters), many in zip(self.sent, self._many, strict=True)
        ]

    def writes_to(self, table: str) -> list[str]:
        """The UPDATEs and INSERTs of ``table``, normalized as :attr:`sql`."""
        return [
            s
            for s in self.sql
            if s.startswith((f"UPDATE {table.upper()} ", f"INSERT INTO {table.upper()} "))
        ]

    def inserts_into(self, table: str) -> list[str]:
        """The INSERTs into ``table``, normalized as :attr:`sql`."""
        return [s for s in self.sql if s.startswith(f"INSERT INTO {table.upper()} ")]

    def last(self, matching: Callable[[str], bool]) -> tuple[str, Any]:
        """The last statement ``matching`` its SQL (as sent), with its parameters."""
        for statement, parameters in reversed(self.runnable):
            if matching(statement):
                return statement, parameters
        raise AssertionError("no such statement was sent")


async def rows_selected(engine: AsyncEngine, statements: Statements) -> int:
    """Rows the SELECTs among ``statements`` return when run again now: how many rows some code
    read, counted without timing anything."""
    rows = 0
    async with engine.connect() as conn:
        for statement, parameters in statements.sent:
            if statement.lstrip().upper().startswith("SELECT"):
                rows += len((await conn.exec_driver_sql(statement, parameters)).all())
    return rows
