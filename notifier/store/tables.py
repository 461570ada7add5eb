"""The schema, as SQLAlchemy 2 declarative models. Migrations in ``migrations/`` create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from notifier.core.clock import as_utc

# Named constraints so that Alembic's batch mode on SQLite can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (no zones) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Watch(Base):
    __tablename__ = "watches"
    __table_args__ = (
        UniqueConstraint("account_service_id", "image_version_id"),
        # The claim's order, ties by id: with the id in it PostgreSQL stops at the batch's LIMIT
        # instead of sorting every due watch (SQLite's indexes end with the rowid anyway).
        Index("ix_watches_due_order", "next_poll_at", "id"),
        # A removed watch's id is never given to the next one (migration 0013).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_service_id: Mapped[int] = mapped_column(BigInteger)
    image_version_id: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # NULL: nothing more to poll (a finished job); the watch stays listed.
    next_poll_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    poll_errors: Mapped[int] = mapped_column(Integer, default=0)
    last_poll_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # A watch.poll_failing went out and no watch.poll_recovered yet.
    poll_failing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Why polling stopped until `notifier watch resume` (credentials refused, not found).
    paused_reason: Mapped[str | None] = mapped_column(Text)
    # Overrides the poll interval by state while the job is unfinished.
    interval_seconds: Mapped[float | None] = mapped_column(Float)
    # Until when a reply identical to the stored one is no news, as the last planned poll
    # decided (notifier.core.poll_plan.PollPlan.quiet_until); NULL: no deadline.
    quiet_until: Mapped[datetime | None]
    # Slack mentions (``<@U…>``, ``<!subteam^S…>``) paged about this job; NULL: nobody.
    owners: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))


class JobStatusRow(Base):
    __tablename__ = "job_status"

    watch_id: Mapped[int] = mapped_column(
        ForeignKey("watches.id", ondelete="CASCADE"), primary_key=True
    )
    state_id: Mapped[int | None] = mapped_column(Integer)
    state_name: Mapped[str] = mapped_column(String(60))
    progress: Mapped[int] = mapped_column(Integer)
    eta: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    job_created: Mapped[datetime | None]
    job_started: Mapped[datetime | None]
    job_updated: Mapped[datetime | None]
    # When these values were first seen; unchanged polls write nothing here (see watches).
    observed_at: Mapped[datetime]
    # When the state id last changed: what the failed-job linger is measured from.
    state_since: Mapped[datetime]
    eta_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The timing detectors' memory (notifier.core.timing.Tracking).
    moved_at: Mapped[datetime | None]
    stalled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    eta_baseline: Mapped[datetime | None]
    overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    milestone: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rate_since: Mapped[datetime | None]
    rate_base_progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Digest of the reply body behind this status: an identical reply is settled without parsing.
    reply_digest: Mapped[bytes | None] = mapped_column(LargeBinary(16))


class EventRow(Base):
    __tablename__ = "events"

    # The sequence orders deliveries; the id is what receivers see (webhook-id).
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(60))
    account_service_id: Mapped[int] = mapped_column(BigInteger)
    image_version_id: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(200))
    previous: Mapped[dict[str, Any] | None]
    current: Mapped[dict[str, Any]]
    detail: Mapped[dict[str, Any] | None]
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    # The silence that held it (not sent while it lasted); NULL for an event sent as usual.
    silence_id: Mapped[int | None] = mapped_column(Integer, index=True)


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(Text)
    # Where the secret comes from ("config" for the configuration file); never the secret itself.
    secret_ref: Mapped[str | None] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    # Set when a receiver said it is gone for good (HTTP 410): inactive until someone runs
    # `notifier subscription enable`, even if the configuration still lists it.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # A webhook added through the admin API signs with a secret kept here (secret_ref
    # "database"): the database file is 0600, see docs/security.md. During a rotation's overlap
    # the replaced secret signs too, until previous_secret_until.
    signing_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    # A webhook added through the admin API: a built-in preset's name or its own body template
    # (configuration-file subscriptions keep theirs in the file).
    preset: Mapped[str | None] = mapped_column(String(20))
    template: Mapped[str | None] = mapped_column(Text)
    # Event types whose Slack reply mentions the owners; NULL: the default (failed).
    mention_on: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # Extra people (or <!here>) those replies mention; NULL: none.
    mention: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    # "HH:MM Area/City" of the daily digest; NULL: none.
    digest: Mapped[str | None] = mapped_column(String(60))


class DeliveryRow(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index("ix_deliveries_key", "subscription_id", "watch_id", "status"),
        # At most one unclaimed live-message refresh per (subscription, watch): NULLs never clash.
        UniqueConstraint("subscription_id", "watch_id", "refresh_slot"),
    )

    # Within one (subscription, watch) the id follows event order: it is the send order.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL for a live-message refresh (kind "refresh"): no event, it shows the newest status.
    event_id: Mapped[str | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    # "event", or "refresh": re-render a Slack live message after a progress/ETA-only change.
    kind: Mapped[str] = mapped_column(String(10), default="event", server_default="event")
    # True while a refresh is unclaimed (coalescing key), NULL otherwise; cleared when claimed.
    refresh_slot: Mapped[bool | None] = mapped_column(Boolean)
    # Copied from the event so that per-(subscription, watch) ordering needs no join; NULL for
    # a digest, which is about no one watch.
    watch_id: Mapped[int | None] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    # The silence that held it: status "held" until that silence ends, then "silenced" (never
    # sent), or pending again as the one "resume" of its Slack live message.
    silence_id: Mapped[int | None] = mapped_column(Integer)
    # A daily digest (kind "digest"): its id, one per (subscription, day). Unique, so the
    # replicas firing the same cron trigger insert it once; NULL for everything else.
    digest_id: Mapped[str | None] = mapped_column(String(60), unique=True)
    # The digest as rendered from the events when it was claimed (store/codec.py).
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class SlackMessageRow(Base):
    __tablename__ = "slack_messages"

    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    account_service_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    image_version_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    # NULL while the first post is under way (see pending_since): a crash there is recoverable.
    ts: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime]
    # Fingerprint of the blocks the message shows now: an update that changes nothing is skipped.
    rendered: Mapped[str | None] = mapped_column(String(64))
    pending_since: Mapped[datetime | None]


class SilenceRow(Base):
    __tablename__ = "silences"
    # An expired silence's id is never given to the next one: people quote them.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The matchers (notifier.core.silences.Matchers): every one set must agree.
    image_version_id: Mapped[int | None] = mapped_column(BigInteger)
    account_service_id: Mapped[int | None] = mapped_column(BigInteger)
    label_glob: Mapped[str | None] = mapped_column(String(200))
    starts_at: Mapped[datetime]
    # Moved to the moment of `silence expire` when ended early.
    ends_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(120), default="")
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    expired_at: Mapped[datetime | None]
    expired_by: Mapped[str | None] = mapped_column(String(120))
    # Set by the one replica that handled the end (released what it held): once, not per replica.
    end_handled_at: Mapped[datetime | None]


class PaceRow(Base):
    """The next turn of something every replica's sends count against: a Clanforge credential's
    requests, a Slack channel's messages (:mod:`notifier.core.pacing`)."""

    __tablename__ = "pace"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Seconds since the epoch: the arithmetic runs inside one UPDATE, on both databases alike.
    next_at: Mapped[float] = mapped_column(Float)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# Core handles for bulk statements (executemany), typed as tables for mypy.
WATCHES = _table(Watch)
JOB_STATUS = _table(JobStatusRow)
EVENTS = _table(EventRow)
SUBSCRIPTIONS = _table(SubscriptionRow)
DELIVERIES = _table(DeliveryRow)
SLACK_MESSAGES = _table(SlackMessageRow)
SILENCES = _table(SilenceRow)
PACE = _table(PaceRow)
