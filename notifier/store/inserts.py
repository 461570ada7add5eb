"""Adding one row that must be new: the shape every "add" of the admin commands shares."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine


async def insert_new(
    engine: AsyncEngine, statement: Insert, duplicate: Callable[[], Exception]
) -> int:
    """Insert one row in a transaction of its own and return its id; ``duplicate()`` is raised
    when a unique constraint says it exists already. The constraint decides rather than a read
    before the insert, so two replicas adding the same thing at once cannot both succeed."""
    try:
        async with engine.begin() as conn:
            result = await conn.execute(statement)
    except IntegrityError:
        raise duplicate() from None
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
