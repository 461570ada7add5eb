"""Where each Slack live message is, kept in the database so restarts keep updating it.

A row without ``ts`` is a first post under way: :meth:`DatabaseLiveMessages.reserve` writes it
before ``chat.postMessage`` so that a crash between Slack's answer and :meth:`put` is visible to
the next attempt (on this replica or another), which then looks for the message it may have
posted instead of posting a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.live_messages import LiveMessage, LiveMessageKey, PendingPost
from notifier.store.tables import SLACK_MESSAGES, SlackMessageRow


def _key(key: LiveMessageKey) -> tuple[ColumnElement[bool], ...]:
    return (
        SlackMessageRow.subscription_id == key.subscription_id,
        SlackMessageRow.account_service_id == key.account_service_id,
        SlackMessageRow.image_version_id == key.image_version_id,
    )


class DatabaseLiveMessages:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    async def get(self, key: LiveMessageKey) -> LiveMessage | PendingPost | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        SlackMessageRow.channel,
                        SlackMessageRow.ts,
                        SlackMessageRow.rendered,
                        SlackMessageRow.pending_since,
                        SlackMessageRow.updated_at,
                    ).where(*_key(key))
                )
            ).first()
        if row is None:
            return None
        if row.ts is None:
            return PendingPost(channel=row.channel, since=row.pending_since or row.updated_at)
        return LiveMessage(channel=row.channel, ts=row.ts, rendered=row.rendered)

    async def reserve(self, key: LiveMessageKey, channel: str) -> PendingPost:
        now = self._clock()
        await self._replace(
            key, {"channel": channel, "ts": None, "rendered": None, "pending_since": now}
        )
        return PendingPost(channel=channel, since=now)

    async def release(self, key: LiveMessageKey) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(SlackMessageRow).where(*_key(key), SlackMessageRow.ts.is_(None))
            )

    async def put(self, key: LiveMessageKey, message: LiveMessage) -> None:
        await self._replace(
            key,
            {
                "channel": message.channel,
                "ts": message.ts,
                "rendered": message.rendered,
                "pending_since": None,
            },
        )

    async def _replace(self, key: LiveMessageKey, values: dict[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(SlackMessageRow).where(*_key(key)))
            await conn.execute(
                SLACK_MESSAGES.insert().values(**asdict(key), updated_at=self._clock(), **values)
            )


async def posted_in_channel(engine: AsyncEngine, channel: str, image_version_id: int) -> int | None:
    """The account service of ``image_version_id`` if a live message of it is in ``channel``:
    what lets that channel's buttons act on it."""
    async with engine.connect() as conn:
        return await conn.scalar(
            select(SlackMessageRow.account_service_id)
            .where(
                SlackMessageRow.channel == channel,
                SlackMessageRow.image_version_id == image_version_id,
            )
            .limit(1)
        )
