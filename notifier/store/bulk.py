"""Executemany statements whose rows skip SQLAlchemy's per-row parameter machinery.

A poll tick writes thousands of rows per batch (statuses, events, deliveries, schedules). Through
``conn.execute(statement, [dict, ...])`` SQLAlchemy builds and processes a parameter dict per row,
which cost more than the database's own work. A :class:`BulkStatement` is compiled once per
dialect by SQLAlchemy itself (same SQL, same placeholders, same bind casts) and keeps the
dialect's own bind processors (our UTC datetimes, JSON, booleans); a row is then a plain tuple
in :attr:`BulkStatement.names` order, processed by position and handed to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    steps: tuple[tuple[int, Callable[[Any], Any] | None], ...]
    """Per placeholder: where its value sits in a row, and the bind processor to apply. A value
    the statement itself carries (``status="delivered"``) is processed once, its step a function
    that returns it whatever the row holds."""


class BulkStatement:
    """One INSERT or UPDATE with named binds, executed many times from positional rows."""

    def __init__(self, statement: ClauseElement, names: Sequence[str]) -> None:
        self._statement = statement
        self.names = tuple(names)
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compile(dialect)
            self._compiled[dialect.name] = compiled
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # an INSERT or UPDATE compiles to SQL
        positions = compiled.positiontup
        if positions is None:
            raise TypeError(f"{dialect.name}: bulk statements need a positional paramstyle")
        index = {name: i for i, name in enumerate(self.names)}
        binds = compiled.binds
        # Column defaults are filled in by SQLAlchemy's execution context, which rows bypass.
        defaulted = {c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)}
        missing = sorted(
            n for n in positions if n not in index and (binds[n].required or n in defaulted)
        )
        if missing:
            raise ValueError(f"statement binds {missing} that the rows do not carry")
        steps: list[tuple[int, Callable[[Any], Any] | None]] = []
        for name in positions:
            process = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if name in index:
                steps.append((index[name], process))
            else:
                value = binds[name].effective_value
                steps.append((0, _constant(value if process is None else process(value))))
        return _Compiled(compiled.string, tuple(steps))

    async def execute(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        """Execute once per row, in one round trip to the driver (an executemany)."""
        if not rows:
            return
        compiled = self._for(conn.dialect)
        columns = [
            [row[i] for row in rows] if process is None else _processed(process, rows, i)
            for i, process in compiled.steps
        ]
        await conn.exec_driver_sql(compiled.sql, list(zip(*columns, strict=True)))


def _processed(process: Callable[[Any], Any], rows: Sequence[Sequence[Any]], i: int) -> list[Any]:
    """Column ``i`` of ``rows`` through ``process``, once per run of the same object.

    A batch's rows share many values by identity (the batch's clock in every row's
    ``created_at``, one schedule for all): processing each run once instead of each row spares
    most of a write's datetime-to-text conversions. Bind processors are pure, so it is the same
    result.
    """
    out: list[Any] = []
    last: Any = _NOTHING
    value: Any = None
    for row in rows:
        given = row[i]
        if given is not last:
            last = given
            value = process(given)
        out.append(value)
    return out


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _: value


_NOTHING: Any = object()
