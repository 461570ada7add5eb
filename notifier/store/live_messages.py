"""Where each Slack live message is, kept in the database so restarts keep updating it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.notify.sink import LiveMessage
from notifier.store.tables import SLACK_MESSAGES, SLACK_POSTS, SlackMessageRow, SlackPostRow


class DatabaseLiveMessages:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    async def get(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> LiveMessage | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        SlackMessageRow.channel, SlackMessageRow.ts, SlackMessageRow.shows_event_at
                    ).where(
                        SlackMessageRow.subscription_id == subscription_id,
                        SlackMessageRow.account_service_id == account_service_id,
                        SlackMessageRow.image_version_id == image_version_id,
                    )
                )
            ).first()
        if row is None:
            return None
        return LiveMessage(channel=row.channel, ts=row.ts, shows=row.shows_event_at)

    async def put(
        self,
        subscription_id: int,
        account_service_id: int,
        image_version_id: int,
        message: LiveMessage,
    ) -> None:
        key = (
            SlackMessageRow.subscription_id == subscription_id,
            SlackMessageRow.account_service_id == account_service_id,
            SlackMessageRow.image_version_id == image_version_id,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(SlackPostRow).where(
                    SlackPostRow.subscription_id == subscription_id,
                    SlackPostRow.account_service_id == account_service_id,
                    SlackPostRow.image_version_id == image_version_id,
                )
            )
            await conn.execute(delete(SlackMessageRow).where(*key))
            await conn.execute(
                SLACK_MESSAGES.insert().values(
                    subscription_id=subscription_id,
                    account_service_id=account_service_id,
                    image_version_id=image_version_id,
                    channel=message.channel,
                    ts=message.ts,
                    shows_event_at=message.shows,
                    updated_at=self._clock(),
                )
            )

    async def posting_since(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> datetime | None:
        async with self._engine.connect() as conn:
            started: datetime | None = await conn.scalar(
                select(SlackPostRow.started_at).where(
                    SlackPostRow.subscription_id == subscription_id,
                    SlackPostRow.account_service_id == account_service_id,
                    SlackPostRow.image_version_id == image_version_id,
                )
            )
        return started

    async def begin_post(
        self, subscription_id: int, account_service_id: int, image_version_id: int
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(SlackPostRow).where(
                    SlackPostRow.subscription_id == subscription_id,
                    SlackPostRow.account_service_id == account_service_id,
                    SlackPostRow.image_version_id == image_version_id,
                )
            )
            await conn.execute(
                SLACK_POSTS.insert().values(
                    subscription_id=subscription_id,
                    account_service_id=account_service_id,
                    image_version_id=image_version_id,
                    started_at=self._clock(),
                )
            )
