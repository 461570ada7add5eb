"""Rows as a test reads them back: counts of what a piece of code left in a table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine


async def count_rows(engine: AsyncEngine, table: Any, *where: Any) -> int:
    """How many rows of ``table`` (a model or a Table) match every condition in ``where``."""
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table)
        return int(await conn.scalar(query.where(*where) if where else query) or 0)
