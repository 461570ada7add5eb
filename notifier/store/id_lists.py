"""(id, moment) pairs in one bind for an ``UPDATE … FROM`` (:class:`MomentPairsUpdate`): the
outbox's delivered outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    CursorResult,
    Integer,
    Text,
    Update,
    bindparam,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.type_api import TypeEngine

from notifier.store.bulk import memoized


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
