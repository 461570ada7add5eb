"""Request and response bodies of the admin API; the OpenAPI document is generated from these.

Requests are strict (a string where a number belongs is an error, unknown keys are errors), so
what a client sends is what it meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import GenericAlias
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from notifier.config import DigestTime, EventTypes, Mentions, Owners, StateNames
from notifier.core.events import EVENT_TYPES, Event
from notifier.core.ids import MAX_ID, parse_id
from notifier.core.mentions import DEFAULT_MENTION_ON
from notifier.core.status import JobStatus
from notifier.core.urls import redact_url
from notifier.core.webhook_secrets import check_secret
from notifier.store.outbox import DeliveryView
from notifier.store.watches import WatchView

MAX_TEMPLATE_CHARS = 16 * 1024
"""A body template longer than any preset several times over; the request body cap is 64 KiB."""


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


def _shown(name: str, view: type[Any], fields: str, **nested: Any) -> type[_Response]:
    """The response model ``name``: these ``fields`` of a store or core dataclass, required and
    typed as the dataclass declares them (``nested`` names the models that show its nested
    dataclasses). The dataclass says what a field is; the API picks which it shows, so a field
    added to a view is not published by accident."""
    declared = get_type_hints(view)
    chosen: dict[str, Any] = {
        field: (nested.get(field, declared[field]), ...) for field in fields.split()
    }
    return create_model(name, __base__=_Response, __module__=__name__, **chosen)


def _list_of(name: str, item: type[_Response], **more: Any) -> type[_Response]:
    """The response model ``name``: ``items`` of that model, and ``more`` fields."""
    fields: dict[str, Any] = {"items": (GenericAlias(list, (item,)), ...), **more}
    return create_model(name, __base__=_Response, __module__=__name__, **fields)


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
    owners: Owners = Field(default_factory=list)


class WatchPatch(_Request):
    """What may change on a watch: its owners (the list given replaces the one it had)."""

    owners: Owners


StatusOut = _shown(
    "StatusOut",
    JobStatus,
    "state_id state progress eta eta_estimated error failed_count created started updated",
)

WatchOut = _shown(
    "WatchOut",
    WatchView,
    "id account_service_id image_version_id label source active next_poll_at last_polled_at"
    " poll_errors last_poll_error status owners",
    status=StatusOut | None,
)
WatchList = _list_of("WatchList", WatchOut)


# ---------------------------------------------------------------- subscriptions


def _whsec(value: str | None) -> str | None:
    return None if value is None else check_secret(value)


WebhookSecret = Annotated[str, Field(max_length=200), AfterValidator(_whsec)]
"""``whsec_<base64 of 24 to 64 bytes>``; an error names the problem, never the value."""


class SubscriptionCreate(_Request):
    """A subscription added at run time. A webhook is signed per Standard Webhooks with
    ``secret``, or with one generated for it; either way the 201 response carries it, the only
    time it is shown. ``unsigned: true`` sends without a signature."""

    name: Annotated[str, Field(min_length=1, max_length=120)]
    kind: Literal["slack_channel", "webhook"]
    target: Annotated[str, Field(min_length=1, max_length=2000)]
    """The Slack channel id, or the webhook URL (http or https)."""
    events: Annotated[EventTypes, Field(min_length=1, max_length=len(EVENT_TYPES))] = Field(
        default_factory=lambda: ["imageversion.state_changed"]
    )
    states: Annotated[StateNames, Field(max_length=20)] = Field(default_factory=list)
    account_service_ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    image_version_ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    secret: WebhookSecret | None = None
    unsigned: bool = False
    preset: Literal["teams", "discord", "mattermost", "google_chat"] | None = None
    template: Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)] | None = None
    """A Jinja2 body template, as ``[[subscription]] template``: checked against a sample of
    every event type before the subscription is added."""
    mention_on: Annotated[EventTypes, Field(max_length=len(EVENT_TYPES))] = Field(
        default_factory=lambda: list(DEFAULT_MENTION_ON)
    )
    """Slack channels only: event types whose thread reply mentions the owners and ``mention``."""
    mention: Mentions = Field(default_factory=list)
    digest: DigestTime | None = None
    """``HH:MM Area/City``: a daily digest of the last 24 hours at that local time."""

    @model_validator(mode="after")
    def _webhook_options(self) -> SubscriptionCreate:
        given = {
            "secret": self.secret is not None,
            "unsigned": self.unsigned,
            "preset": self.preset is not None,
            "template": self.template is not None,
        }
        if self.kind != "webhook":
            for key, present in given.items():
                if present:
                    raise ValueError(f"{key} goes with kind webhook")
        if self.secret is not None and self.unsigned:
            raise ValueError("give secret or unsigned: true, not both")
        if self.preset is not None and self.template is not None:
            raise ValueError("give template or preset, not both")
        return self

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
    signed: bool
    """A webhook whose requests carry a Standard Webhooks signature (the secret is shown only
    once, when the subscription is added or its secret rotated)."""
    preset: str | None
    custom_template: bool
    """Whether the webhook renders its own body template."""
    previous_secret_until: datetime | None
    """During a rotation's overlap: until when the replaced secret still signs too."""
    mention_on: list[str]
    mention: list[str]
    digest: str | None

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


class SubscriptionCreated(SubscriptionOut):
    secret: str | None
    """The signing secret (``whsec_…``) of a signed webhook: shown here once and never again."""


class SubscriptionList(_Response):
    items: list[SubscriptionOut]


class SecretRotate(_Request):
    """Optional: the new secret; without it one is generated."""

    secret: WebhookSecret | None = None


class SecretRotated(_Response):
    id: int
    name: str
    secret: str
    """The new signing secret: shown here once and never again."""
    previous_secret_until: datetime | None
    """Until when requests carry the replaced secret's signature too
    (``[delivery] secret_overlap_seconds``); null when the webhook was unsigned."""


# ---------------------------------------------------------------- events


EventOut = _shown(
    "EventOut",
    Event,
    "id type occurred_at account_service_id image_version_id label previous current detail"
    " silence_id",
    previous=StatusOut | None,
    current=StatusOut,
    detail=dict[str, Any],
)
EventPage = _list_of("EventPage", EventOut, next_before=(int | None, ...))
"""``next_before``: pass as ``before`` to get the next (older) page; null on the last page."""


# ---------------------------------------------------------------- deliveries


DeliveryOut = _shown(
    "DeliveryOut",
    DeliveryView,
    "id subscription event_id event_type image_version_id status attempts next_attempt_at"
    " last_error created_at delivered_at lease_owner",
)
DeliveryList = _list_of("DeliveryList", DeliveryOut)


class DeliveryRetry(_Request):
    ids: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)
    all_dead: bool = False


class RetryResult(_Response):
    retried: int


# ---------------------------------------------------------------- silences


class SilenceCreate(_Request):
    """At least one matcher (all given must match), and ``for`` or ``until``."""

    image_version_id: Id | None = None
    account_service_id: Id | None = None
    label_glob: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    for_: Annotated[str | None, Field(alias="for", max_length=20, examples=["2h"])] = None
    """How long: ``30m``, ``2h``, ``1d`` (at most ``30d``)."""
    until: Annotated[str | None, Field(max_length=40, examples=["2026-12-01T18:00:00Z"])] = None
    """Until when, RFC 3339 with a zone; at most 30 days away."""
    reason: Annotated[str, Field(max_length=500)] = ""
    created_by: Annotated[str, Field(max_length=120)] = "api"


class SilenceOut(_Response):
    id: int
    image_version_id: int | None
    account_service_id: int | None
    label_glob: str | None
    matches: str
    state: Literal["active", "expired"]
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    source: str
    expired_at: datetime | None
    expired_by: str | None
    held_events: int
    """Events recorded with this silence: held back from being sent."""


class SilenceList(_Response):
    items: list[SilenceOut]


# ---------------------------------------------------------------- health


class Health(_Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    WatchCreate,
    WatchPatch,
    SubscriptionCreate,
    SecretRotate,
    DeliveryRetry,
    SilenceCreate,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    WatchOut,
    WatchList,
    SubscriptionOut,
    SubscriptionCreated,
    SubscriptionList,
    SecretRotated,
    EventPage,
    DeliveryList,
    RetryResult,
    SilenceOut,
    SilenceList,
    Health,
)
