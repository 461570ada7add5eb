"""``column IN (these ids)`` with the ids in ONE bind parameter, on SQLite and PostgreSQL; and
(id, moment) pairs in one bind for an ``UPDATE … FROM`` (:class:`MomentPairsUpdate`).

A poll batch names its thousand watches in four statements (the lease, the memory of changed
watches, the "still ours?" check, the quiet schedule). SQLAlchemy's expanding IN renders a
placeholder per id at every execution and processes each id as a bind of its own; the database
then parses a statement of a thousand placeholders. Here the list is one value: JSON text that
SQLite's ``json_each`` unpacks, an array for PostgreSQL's ``= ANY``. Both look the ids up by the
primary key, as the IN list did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Boolean,
    CursorResult,
    Integer,
    Text,
    Update,
    bindparam,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from notifier.store.bulk import memoized


def among_ids(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` is one of the integer ids bound as ``name`` (a list of ints)."""
    return _AmongIds(column, bindparam(name, type_=_IdList()))


class _IdList(TypeDecorator[Sequence[int]]):
    """A list of ids as one bind: JSON text on SQLite, an integer array on PostgreSQL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(Integer))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Sequence[int] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(value).decode()


class _AmongIds(ColumnElement[bool]):
    # What tells two of these apart in SQLAlchemy's statement cache: the column and the bind.
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's own attribute, a list by its contract
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    # A predicate already: no "= 1" appended where the dialect has no boolean type (SQLite).
    _is_implicitly_boolean = True

    def __init__(self, column: ColumnElement[Any], ids: BindParameter[Any]) -> None:
        self.column = column
        self.ids = ids


@compiles(_AmongIds)
def _json_each(element: _AmongIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    ids = compiler.process(element.ids, **kw)
    # Both fragments are compiled SQL (a column, a placeholder): no value is pasted in.
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608


@compiles(_AmongIds, "postgresql")
def _any(element: _AmongIds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.ids, **kw)})"


class MomentPairsUpdate:
    """An ``UPDATE … FROM`` that gives each row its own moment (a watch its next poll, a
    delivery the time it went out), the (id, moment) pairs in ONE bind.

    An executemany steps SQLite once per row, and the sqlite3 module gives the GIL back and
    takes it again at every step; one statement over the pairs steps once. JSON text unpacked by
    ``json_each`` on SQLite, the moments already in the column's stored form; two arrays
    unnested on PostgreSQL. ``build`` makes the statement from the pair's id and moment columns,
    once per backend; :meth:`execute` runs the one for the connection's.
    """

    def __init__(
        self,
        name: str,
        moment_type: TypeEngine[Any],
        build: Callable[[ColumnElement[Any], ColumnElement[Any]], Update],
    ) -> None:
        self._name = name
        self._moment_type = moment_type
        pairs = func.json_each(bindparam(name, type_=Text())).table_valued("value")
        self._sqlite = build(
            func.json_extract(pairs.c.value, literal_column("'$[0]'")),
            func.json_extract(pairs.c.value, literal_column("'$[1]'")),
        )
        arrays = (
            func.unnest(
                bindparam(f"{name}_ids", type_=postgresql.ARRAY(Integer)),
                bindparam(f"{name}_moments", type_=postgresql.ARRAY(moment_type)),
            )
            .table_valued("id", "moment")
            .render_derived()
        )
        self._postgres = build(arrays.c.id, arrays.c.moment)

    async def execute(
        self,
        conn: AsyncConnection,
        ids: Sequence[int],
        moments: Sequence[Any],
        params: Mapping[str, Any],
        memo: dict[Any, Any] | None = None,
    ) -> CursorResult[Any]:
        """Run the statement over these pairs with the statement's other ``params``; ``memo`` as
        :func:`notifier.store.bulk.memoized` takes."""
        if conn.dialect.name == "postgresql":
            pairs = {f"{self._name}_ids": list(ids), f"{self._name}_moments": list(moments)}
            return await conn.execute(self._postgres, {**params, **pairs})
        process = self._moment_type.bind_processor(conn.dialect)
        assert process is not None  # UTCDateTime writes text on SQLite
        texts = memoized(process, moments, {} if memo is None else memo)
        text = orjson.dumps(list(zip(ids, texts, strict=True))).decode()
        return await conn.execute(self._sqlite, {**params, self._name: text})
