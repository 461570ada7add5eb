"""Request and response bodies of the admin API; the OpenAPI document is generated from these.

Requests are strict (a string where a number belongs is an error, unknown keys are errors), so
what a client sends is what it meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from notifier.core.events import EVENT_TYPES
from notifier.core.ids import MAX_ID, parse_id
from notifier.core.status import state_id_for_name
from notifier.core.urls import redact_url


def _in_id_range(value: int) -> int:
    return parse_id(value)


Id = Annotated[
    int,
    AfterValidator(_in_id_range),
    Field(json_schema_extra={"minimum": 1, "maximum": MAX_ID}),
]
"""Clanforge ids: positive, and small enough to survive a JavaScript client (core.ids)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Response(BaseModel):
    """Built from the store's and the core's objects with ``model_validate(obj)``."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class ErrorDetail(_Response):
    code: str
    message: str


class ErrorBody(_Response):
    error: ErrorDetail


# ---------------------------------------------------------------- watches


class WatchCreate(_Request):
    account_service_id: Id
    image_version_id: Id
    label: Annotated[str, Field(max_length=200)] = ""


class StatusOut(_Response):
    state_id: int | None
    state: str
    progress: int
    eta: datetime | None
    eta_estimated: bool
    error: str | None
    failed_count: int
    created: datetime | None
    started: datetime | None
    updated: datetime | None


class WatchOut(_Response):
    id: int
    account_service_id: int
    image_version_id: int
    label: str
    source: str
    active: bool
    next_poll_at: datetime | None
    last_polled_at: datetime | None
    poll_errors: int
    last_poll_error: str | None
    status: StatusOut | None


class WatchList(_Response):
    items: list[WatchOut]


# ---------------------------------------------------------------- subscriptions


def _known_events(value: list[str]) -> list[str]:
    for name in value:
        if name not in EVENT_TYPES:
            raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")
    return value


class SubscriptionCreate(_Request):
    """A subscription added at run time. Webhooks added here are sent unsigned: signing secrets
    live in the configuration file only, never in the database."""

    name: Annotated[str, Field(min_length=1, max_length=120)]
    kind: Literal["slack_channel", "webhook"]
    target: Annotated[str, Field(min_length=1, max_length=2000)]
    """The Slack channel id, or the webhook URL (http or https)."""
    events: Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES))] = Field(
        default_factory=lambda: ["imageversion.state_changed"]
    )
    states: Annotated[list[str], Field(max_length=20)] = Field(default_factory=list)
    account_service_ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    image_version_ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _known_events(value)

    @field_validator("states")
    @classmethod
    def _states(cls, value: list[str]) -> list[str]:
        for name in value:
            if state_id_for_name(name) is None:
                raise ValueError(f"unknown state {name!r}")
        return value

    def filters(self) -> dict[str, Any]:
        return {
            "events": list(self.events),
            "states": list(self.states),
            "account_service_ids": list(self.account_service_ids),
            "image_version_ids": list(self.image_version_ids),
        }


class Filters(_Response):
    events: list[str]
    states: list[str]
    account_service_ids: list[int]
    image_version_ids: list[int]


class SubscriptionOut(_Response):
    id: int
    name: str
    kind: str
    target: str
    """The Slack channel id, or the webhook's scheme, host and port only: paths and queries of
    hook URLs often carry tokens."""
    filters: Filters
    active: bool
    source: str

    @field_validator("target")
    @classmethod
    def _redacted(cls, value: str, info: ValidationInfo) -> str:
        return value if info.data.get("kind") == "slack_channel" else redact_url(value)

    @field_validator("filters", mode="before")
    @classmethod
    def _every_filter(cls, value: Any) -> Any:
        """The stored filters leave out what a subscription does not filter on."""
        if isinstance(value, Mapping):
            return {name: value.get(name, []) for name in Filters.model_fields}
        return value


class SubscriptionList(_Response):
    items: list[SubscriptionOut]


# ---------------------------------------------------------------- events


class EventOut(_Response):
    id: str
    type: str
    occurred_at: datetime
    account_service_id: int
    image_version_id: int
    label: str
    previous: StatusOut | None
    current: StatusOut
    detail: dict[str, Any]


class EventPage(_Response):
    items: list[EventOut]
    next_before: int | None
    """Pass as ``before`` to get the next (older) page; null on the last page."""


# ---------------------------------------------------------------- deliveries


class DeliveryOut(_Response):
    id: int
    subscription: str
    event_id: str
    event_type: str
    image_version_id: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    lease_owner: str | None
    """The replica sending it right now, if any."""


class DeliveryList(_Response):
    items: list[DeliveryOut]


class DeliveryRetry(_Request):
    ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    all_dead: bool = False


class RetryResult(_Response):
    retried: int


# ---------------------------------------------------------------- health


class Health(_Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (WatchCreate, SubscriptionCreate, DeliveryRetry)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    WatchOut,
    WatchList,
    SubscriptionOut,
    SubscriptionList,
    EventPage,
    DeliveryList,
    RetryResult,
    Health,
)
