"""What a piece of code sent the database, recorded from SQLAlchemy's own engine events."""

from __future__ import annotations

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
