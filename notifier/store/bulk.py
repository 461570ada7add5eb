"""Executemany statements whose rows skip SQLAlchemy's per-row parameter machinery.

A poll tick writes thousands of rows per batch (statuses, events, deliveries, schedules). Through
``conn.execute(statement, [dict, ...])`` SQLAlchemy builds and processes a parameter dict per row,
which cost more than the database's own work. A :class:`BulkStatement` is compiled once per
dialect by SQLAlchemy itself (same SQL, same placeholders, same bind casts) and keeps the
dialect's own bind processors (our UTC datetimes, JSON, booleans); a row is then a plain tuple
in :attr:`BulkStatement.names` order, processed by position and handed to the driver.

Turning a datetime into the driver's value is the costliest processing there is (SQLite's text,
about a microsecond), and a changed watch's moment of polling sits in several columns of
several statements (its status's ``state_since``, ``moved_at`` and ``rate_since``, its event's
``occurred_at``). Datetime columns are therefore processed through a memo by value, which the
statements of one write can share (:meth:`BulkStatement.execute`'s ``memo``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from notifier.store.tables import UTCDateTime


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    steps: tuple[tuple[int, Callable[[Any], Any] | None, bool], ...]
    """Per placeholder: where its value sits in a row, the bind processor to apply, and whether
    it is a datetime (processed through the memo). A value the statement itself carries
    (``status="delivered"``) is processed once, its step a function that returns it whatever
    the row holds."""


class BulkStatement:
    """One INSERT or UPDATE with named binds, executed many times from positional rows."""

    def __init__(
        self, statement: ClauseElement, names: Sequence[str], encoded: Collection[str] = ()
    ) -> None:
        """``encoded`` names binds whose row values are already what the driver takes (a JSON
        column's text, written by :func:`notifier.store.codec.status_json_text`): no processor."""
        self._statement = statement
        self.names = tuple(names)
        self._encoded = frozenset(encoded)
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
        steps: list[tuple[int, Callable[[Any], Any] | None, bool]] = []
        for name in positions:
            bind_type = binds[name].type
            process = bind_type.dialect_impl(dialect).bind_processor(dialect)
            if name in index:
                if name in self._encoded:
                    process = None
                steps.append((index[name], process, isinstance(bind_type, UTCDateTime)))
            else:
                value = binds[name].effective_value
                steps.append((0, _constant(value if process is None else process(value)), False))
        return _Compiled(compiled.string, tuple(steps))

    async def execute(
        self,
        conn: AsyncConnection,
        rows: Sequence[Sequence[Any]],
        memo: dict[Any, Any] | None = None,
    ) -> None:
        """Execute once per row, in one round trip to the driver (an executemany).

        ``memo`` maps datetimes to what the driver was given for them; pass one dict to every
        statement of a write (one dialect) to process each moment once across them all.
        """
        if not rows:
            return
        compiled = self._for(conn.dialect)
        if memo is None:
            memo = {}
        columns = [
            [row[i] for row in rows]
            if process is None
            else _memoized(process, rows, i, memo)
            if is_datetime
            else _processed(process, rows, i)
            for i, process, is_datetime in compiled.steps
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


def _memoized(
    process: Callable[[Any], Any], rows: Sequence[Sequence[Any]], i: int, memo: dict[Any, Any]
) -> list[Any]:
    """Column ``i`` of ``rows`` (datetimes) through ``process``, once per distinct moment."""
    return memoized(process, [row[i] for row in rows], memo)


def memoized(
    process: Callable[[Any], Any], values: Sequence[Any], memo: dict[Any, Any]
) -> list[Any]:
    """Datetimes through a bind ``process``, once per distinct moment: ``memo`` keeps what each
    became, and one memo serves every statement of a write.

    Equal aware datetimes are the same instant, which :class:`UTCDateTime` writes the same way
    whatever their zone: looking the value up costs a tenth of converting it again.
    """
    out: list[Any] = []
    for given in values:
        value = memo.get(given, _NOTHING)
        if value is _NOTHING:
            value = memo[given] = process(given)
        out.append(value)
    return out


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _: value


_NOTHING: Any = object()
