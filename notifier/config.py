"""The configuration file: TOML, `${NAME}` taken from the environment, validated strictly.

The environment is read here only, through the mapping the caller passes in, and everything else
receives the typed :class:`Settings`.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from notifier.clanforge.options import DEFAULT_BASE_URL, ClanforgeOptions, Credential
from notifier.core.address_policy import AddressPolicy
from notifier.core.digest import parse_digest
from notifier.core.events import STATE_CHANGED, check_event_types
from notifier.core.mentions import DEFAULT_MENTION_ON, check_mentions, check_owners
from notifier.core.poll_plan import PollPolicy
from notifier.core.retention import RetentionPolicy
from notifier.core.retry import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_SCHEDULE_SECONDS,
    RetryPolicy,
)
from notifier.core.status import check_state_names
from notifier.core.subscriptions import WebhookSubscription
from notifier.core.timing import DetectPolicy
from notifier.core.urls import redact_url
from notifier.core.webhook_secrets import check_secret
from notifier.notify.presets import PRESETS
from notifier.notify.template import TemplateProblem, check_template
from notifier.store.engine import sqlite_file
from notifier.store.subscriptions import ConfigSubscription
from notifier.store.watches import ConfigWatch

_POLL: Final = PollPolicy()
_DETECT: Final = DetectPolicy()

DEFAULT_CONFIG_PATH = Path("config/notifier.toml")
CONFIG_ENV_VAR = "NOTIFIER_CONFIG"


class ConfigError(Exception):
    """A configuration problem, worded as the one line a user sees: file, key, problem."""

    def __init__(self, file: Path | str, key: str, problem: str) -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(f"{where}{problem}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _owner_list(value: list[str]) -> list[str]:
    return list(check_owners(value))


def _mention_list(value: list[str]) -> list[str]:
    return list(check_mentions(value))


def _digest_time(value: str) -> str:
    return parse_digest(value).text


# The checks of owners, extra mentions, digest times, event types and state names, one for the
# file and the API alike.
Owners = Annotated[
    list[Annotated[str, Field(max_length=40)]],
    Field(max_length=20, description='Slack mentions: "<@U…>" users, "<!subteam^S…>" groups.'),
    AfterValidator(_owner_list),
]
Mentions = Annotated[
    list[Annotated[str, Field(max_length=40)]], Field(max_length=20), AfterValidator(_mention_list)
]
DigestTime = Annotated[str, Field(max_length=60), AfterValidator(_digest_time)]
EventTypes = Annotated[list[str], AfterValidator(check_event_types)]
StateNames = Annotated[list[str], AfterValidator(check_state_names)]

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s:]+", value):
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    return value


class DatabaseSettings(_Section):
    url: NonEmptyStr = "sqlite+aiosqlite:///notifier.db"

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL") from None
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise ValueError(
                f"driver {url.drivername!r} is not supported; "
                "use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value


def _secret_not_empty(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not value.get_secret_value():
        raise ValueError("must not be empty")
    return value


DEFAULT_ACCOUNT: Final = "default"
"""The name of the credential pair given directly under ``[clanforge]``."""


class ClanforgeAccountSettings(_Section):
    """One more Clanforge credential pair, bound to the account services it may see.

    Each account has its own rate limit: Clanforge counts requests per credential.
    """

    name: NonEmptyStr
    access_key: SecretStr
    secret_key: SecretStr
    account_service_ids: list[PositiveInt] = Field(min_length=1)
    requests_per_second: PositiveFloat | None = None
    burst: PositiveInt | None = None

    @field_validator("access_key", "secret_key")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        _secret_not_empty(value)
        return value


class ClanforgeSettings(_Section):
    base_url: str = DEFAULT_BASE_URL
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    timeout_seconds: PositiveFloat = 10
    max_concurrency: PositiveInt = 8
    requests_per_second: PositiveFloat = 5
    # Requests a credential may send back to back before the rate applies; default: one second's.
    burst: PositiveInt | None = None
    account: list[ClanforgeAccountSettings] = Field(default_factory=list)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("access_key", "secret_key")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        return _secret_not_empty(value)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("access_key and secret_key go together")
        if self.access_key is None and not self.account:
            raise ValueError(
                "needs access_key and secret_key, or at least one [[clanforge.account]]"
            )
        names: set[str] = {DEFAULT_ACCOUNT} if self.access_key is not None else set()
        bound: dict[int, str] = {}
        for account in self.account:
            if account.name in names:
                raise ValueError(f"account name {account.name!r} is used twice")
            names.add(account.name)
            for asid in account.account_service_ids:
                if asid in bound:
                    raise ValueError(
                        f"account service {asid} is bound to both {bound[asid]!r} "
                        f"and {account.name!r}"
                    )
                bound[asid] = account.name
        return self

    def credentials(self) -> list[Credential]:
        """Every credential pair, the default one (if any) first."""
        # Evenly spaced by default: bursts a window apart draw 429s from a sliding-window limit.
        default_burst = self.burst or 1
        found: list[Credential] = []
        if self.access_key is not None and self.secret_key is not None:
            found.append(
                Credential(
                    DEFAULT_ACCOUNT,
                    self.access_key.get_secret_value(),
                    self.secret_key.get_secret_value(),
                    self.requests_per_second,
                    default_burst,
                    frozenset(),
                )
            )
        for account in self.account:
            rate = account.requests_per_second or self.requests_per_second
            found.append(
                Credential(
                    account.name,
                    account.access_key.get_secret_value(),
                    account.secret_key.get_secret_value(),
                    rate,
                    account.burst or self.burst or 1,
                    frozenset(account.account_service_ids),
                )
            )
        return found

    def options(self) -> ClanforgeOptions:
        """What the Clanforge session and its clients are built from."""
        return ClanforgeOptions(
            credentials=tuple(self.credentials()),
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            max_concurrency=self.max_concurrency,
        )

    def credential_for(self, account_service_id: int) -> str | None:
        """The name of the credential that polls ``account_service_id``; None when none may."""
        for account in self.account:
            if account_service_id in account.account_service_ids:
                return account.name
        return DEFAULT_ACCOUNT if self.access_key is not None else None


class PollSettings(_Section):
    """``[poll]``: builds the core's :class:`PollPolicy`, whose defaults these are."""

    interval_seconds: PositiveFloat = _POLL.interval_seconds
    running_interval_seconds: PositiveFloat = _POLL.running_interval_seconds
    failed_interval_seconds: PositiveFloat = _POLL.failed_interval_seconds
    failed_linger_seconds: Annotated[float, Field(ge=0)] = _POLL.failed_linger_seconds
    waiting_interval_seconds: PositiveFloat | None = _POLL.waiting_interval_seconds
    failure_threshold: PositiveInt = _POLL.failure_threshold
    spread: Annotated[float, Field(ge=0, le=1)] = _POLL.spread
    max_gap_seconds: PositiveFloat = _POLL.max_gap_seconds

    def policy(self) -> PollPolicy:
        return PollPolicy(**self.model_dump())

    @property
    def tick_seconds(self) -> float:
        return self.policy().tick_seconds


class DetectSettings(_Section):
    """``[detect]``: builds the core's :class:`DetectPolicy`, whose defaults these are.

    0 (or an empty list) turns a detector off for everyone; subscriptions that do not want an
    event type leave it out of their ``events`` filter."""

    stall_after_seconds: Annotated[float, Field(ge=0)] = _DETECT.stall_after_seconds
    waiting_stall_after_seconds: Annotated[float, Field(ge=0)] = _DETECT.waiting_stall_after_seconds
    eta_slip_seconds: Annotated[float, Field(ge=0)] = _DETECT.eta_slip_seconds
    overdue_grace_seconds: Annotated[float, Field(ge=0)] = _DETECT.overdue_grace_seconds
    progress_milestones: list[Annotated[int, Field(gt=0, lt=100)]] = Field(default_factory=list)
    estimate_eta: bool = _DETECT.estimate_eta

    def policy(self) -> DetectPolicy:
        fields = self.model_dump()
        fields["progress_milestones"] = tuple(self.progress_milestones)
        return DetectPolicy(**fields)


class DiscoverySettings(_Section):
    """Opt-in: watch every image version being installed under these account services."""

    account_service_ids: list[PositiveInt] = Field(default_factory=list)
    interval_seconds: PositiveFloat = 60


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    signing_secret: SecretStr | None = None
    # Slack asks for about one message per second per channel; 0 turns pacing off (tests).
    channel_interval_seconds: Annotated[float, Field(ge=0)] = 1.0
    # What /imagewatch may do. Account services it may watch (unset: those of the file's watches
    # and accounts), channels where add/remove work (unset: all), watches per channel.
    command_account_services: list[PositiveInt] | None = None
    command_channels: list[NonEmptyStr] | None = None
    command_max_watches_per_channel: PositiveInt = 50

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class RetentionSettings(_Section):
    """How long history is kept; pending deliveries and the events they need are always kept."""

    events_days: PositiveFloat = 30
    deliveries_days: PositiveFloat = 14

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(self.events_days, self.deliveries_days)


class NetworkSettings(_Section):
    """Where subscription targets may send besides public addresses (GitLab's "allow requests to
    the local network"): CIDRs of receivers inside the studio's network."""

    allow_private: list[str] = Field(default_factory=list)

    @field_validator("allow_private")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for i, cidr in enumerate(value):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"entry {i}: {cidr!r} is not a network (write 10.0.0.0/8 or fd00::/8)"
                ) from None
        return value

    def policy(self) -> AddressPolicy:
        return AddressPolicy.of(self.allow_private)


class ServerSettings(_Section):
    """The built-in HTTP server (admin API, status page, metrics); runs when ``[server]`` is set."""

    listen: str = "127.0.0.1:8080"
    admin_token: SecretStr | None = None
    # With a token, the status page and /metrics need it too, unless the operator opens them.
    public_status: bool = False
    # Where people reach the status page (behind a proxy, say): the live Slack message's "Open"
    # button leads to its watch page there. Unset: no "Open" button.
    public_url: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        # Port 0 asks the system for a free port (tests, the demo); the log says which.
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"must be HOST:PORT, got {value!r}")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = _http_url(value.strip())
        if any(c in url for c in "?#") or any(ord(c) <= 32 for c in url):
            raise ValueError(f"must be a plain http(s) URL without query or fragment, got {url!r}")
        return url.rstrip("/")

    def watch_page(self, watch_id: int) -> str | None:
        """The watch's page on the status page as people reach it; None without public_url."""
        return None if self.public_url is None else f"{self.public_url}/watches/{watch_id}"

    @field_validator("admin_token")
    @classmethod
    def _unset_when_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # `${NOTIFIER_ADMIN_TOKEN:-}` with the variable unset means "no token".
        return None if value is None or not value.get_secret_value() else value

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> Self:
        if self.admin_token is None and not is_loopback_host(self.host):
            raise ValueError(
                f"listen {self.listen!r} is reachable from other machines, so admin_token "
                "must be set (or listen on 127.0.0.1)"
            )
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class DeliverySettings(_Section):
    timeout_seconds: PositiveFloat = 15
    max_concurrency: PositiveInt = 8
    # How often the dispatcher looks for due retries when nothing wakes it.
    interval_seconds: PositiveFloat = 1
    # Delays between attempts (full jitter between one step and the next); the last is the cap.
    retry_schedule_seconds: list[PositiveFloat] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE_SECONDS), min_length=1
    )
    max_attempts: PositiveInt = DEFAULT_MAX_ATTEMPTS
    max_age_seconds: PositiveFloat = DEFAULT_MAX_AGE_SECONDS
    # How long a claimed delivery is ours: a replica that dies mid-send is replaced after this.
    # Default: 2 x timeout_seconds + 5 (see _default_lease).
    lease_seconds: PositiveFloat = 35
    # On SIGTERM/SIGINT, how long sends (and a poll) under way may take to finish.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 10
    # After `rotate-secret` (admin API), how long requests carry the replaced secret's signature
    # beside the new one: receivers have a day to switch. 0 switches at once.
    secret_overlap_seconds: Annotated[float, Field(ge=0)] = 86400

    @model_validator(mode="before")
    @classmethod
    def _default_lease(cls, data: Any) -> Any:
        """Unless set, a lease outlasts two timed-out requests: long enough for any one send
        (the dispatcher also extends leases of sends under way), short enough that a dead
        replica's deliveries go out again soon."""
        if isinstance(data, dict) and "lease_seconds" not in data:
            timeout = data.get("timeout_seconds", 15)
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
                return {**data, "lease_seconds": 2 * timeout + 5}
        return data

    @field_validator("retry_schedule_seconds")
    @classmethod
    def _growing(cls, value: list[float]) -> list[float]:
        if any(later < earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError("must not decrease from one step to the next")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be longer than timeout_seconds "
                f"({self.timeout_seconds:g}), or a slow send could be sent twice"
            )
        return self

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            schedule_seconds=tuple(self.retry_schedule_seconds),
            max_attempts=self.max_attempts,
            max_age_seconds=self.max_age_seconds,
        )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class WatchSettings(_Section):
    account_service_id: PositiveInt
    image_version_id: PositiveInt
    label: str = ""
    # Overrides the state-based poll interval of this watch while its job is not finished.
    interval_seconds: PositiveFloat | None = None
    # Slack users and user groups paged when this job fails (see [[subscription]] mention_on).
    owners: Owners = Field(default_factory=list)

    def entry(self) -> ConfigWatch:
        """The watch as the store syncs it."""
        return ConfigWatch(
            self.account_service_id,
            self.image_version_id,
            self.label,
            self.interval_seconds,
            tuple(self.owners),
        )


def _whsec(value: SecretStr) -> SecretStr:
    check_secret(value.get_secret_value())
    return value


def _scheme_host(url: str) -> str:
    """``'https://host'`` or a shape description: enough to find the mistake, no path or token."""
    if not urlsplit(url).scheme:
        return "no scheme (write https://...)"
    return repr(redact_url(url))


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: plain http there never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook_url(value: str) -> str:
    """The rule for every webhook URL, from the file or the API: http(s), a host, no
    ``user:password@``. Raises ValueError; the message never quotes the URL, since webhook URLs
    (Discord, Teams, Slack) carry their token in the path and the message is printed and logged."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {_scheme_host(value)}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry user:password@ (it would be stored and logged with the URL; "
            "the signature authenticates us)"
        )
    return value


def sends_in_clear_text(url: str) -> bool:
    """Plain http to a host other than loopback: events and signatures readable on the way."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")


class SubscriptionSettings(_Section):
    name: NonEmptyStr
    slack_channel: NonEmptyStr | None = None
    webhook_url: Annotated[str, AfterValidator(check_webhook_url)] | None = None
    webhook_secret: Annotated[SecretStr, AfterValidator(_whsec)] | None = None
    # During a rotation: more secrets, each adding a signature beside webhook_secret's.
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    # Plain http to a host other than loopback sends events (and signatures) in clear text.
    allow_http: bool = False
    label_glob: NonEmptyStr | None = None
    template: NonEmptyStr | None = None
    preset: Literal["teams", "discord", "mattermost", "google_chat"] | None = None
    # A Slack incoming-webhook URL (post-only; the URL is the credential, so it is a secret).
    slack_webhook_url: SecretStr | None = None
    events: EventTypes = Field(default_factory=lambda: [STATE_CHANGED], min_length=1)
    states: StateNames = Field(default_factory=list)
    account_service_ids: list[PositiveInt] = Field(default_factory=list)
    image_version_ids: list[PositiveInt] = Field(default_factory=list)
    # Slack only: which events' replies mention the watch's owners, and who else they mention.
    mention_on: EventTypes = Field(default_factory=lambda: list(DEFAULT_MENTION_ON))
    mention: Mentions = Field(default_factory=list)
    # "HH:MM Area/City": a daily digest of the last 24 hours at that local time.
    digest: DigestTime | None = None

    @field_validator("slack_webhook_url")
    @classmethod
    def _slack_hook(cls, value: SecretStr | None) -> SecretStr | None:
        # Not _http_url: its message quotes the value, and this value is a credential.
        if value is not None and not re.match(
            r"^https?://[^/\s:]+(:\d+)?/", value.get_secret_value()
        ):
            raise ValueError(
                "must be the URL Slack gave for the incoming webhook (https://hooks.slack.com/...)"
            )
        return value

    @field_validator("webhook_secrets")
    @classmethod
    def _secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for i, secret in enumerate(value):
            try:
                _whsec(secret)
            except ValueError as exc:
                raise ValueError(f"entry {i}: {exc}") from None
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_template(value)
            except TemplateProblem as exc:
                raise ValueError(f"template {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        targets = [
            t
            for t in (self.slack_channel, self.webhook_url, self.slack_webhook_url)
            if t is not None
        ]
        if len(targets) != 1:
            raise ValueError("needs exactly one of slack_channel, slack_webhook_url or webhook_url")
        if self.webhook_url is not None:
            if self.mention:
                raise ValueError("mention goes with slack_channel or slack_webhook_url")
            if tuple(self.mention_on) != DEFAULT_MENTION_ON:
                raise ValueError(
                    "mention_on goes with slack_channel or slack_webhook_url "
                    "(webhooks carry data.owners instead)"
                )
        webhook_only = {
            "webhook_secret": self.webhook_secret is not None,
            "webhook_secrets": bool(self.webhook_secrets),
            "allow_http": self.allow_http,
            "template": self.template is not None,
            "preset": self.preset is not None,
        }
        if self.webhook_url is None:
            for key, given in webhook_only.items():
                if given:
                    raise ValueError(f"{key} goes with webhook_url")
            return self
        if self.template is not None and self.preset is not None:
            raise ValueError("give template or preset, not both")
        if sends_in_clear_text(self.webhook_url) and not self.allow_http:
            raise ValueError(
                "webhook_url must be https:// (set allow_http = true to send in clear text)"
            )
        return self

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """Every secret the requests are signed with, webhook_secret first."""
        first = [self.webhook_secret] if self.webhook_secret is not None else []
        return tuple(s.get_secret_value() for s in [*first, *self.webhook_secrets])

    @property
    def body_template(self) -> str | None:
        """The template source to render bodies with; None sends our own payload."""
        return PRESETS[self.preset] if self.preset is not None else self.template

    @property
    def kind(self) -> Literal["slack_channel", "slack_webhook", "webhook"]:
        if self.slack_webhook_url is not None:
            return "slack_webhook"
        return "slack_channel" if self.slack_channel is not None else "webhook"

    @property
    def config_secrets(self) -> tuple[str, ...]:
        """What the file keeps for the subscription and the database never holds: a webhook's
        signing secrets, or a Slack incoming webhook's URL (the URL is the credential)."""
        if self.slack_webhook_url is not None:
            return (self.slack_webhook_url.get_secret_value(),)
        return self.signing_secrets

    def address_problem(self, policy: AddressPolicy) -> tuple[str, str] | None:
        """(key, problem) when the target's host is written as an address ``policy`` refuses;
        a name is checked once resolved, when sending."""
        for key, url in (
            ("webhook_url", self.webhook_url),
            (
                "slack_webhook_url",
                None
                if self.slack_webhook_url is None
                else self.slack_webhook_url.get_secret_value(),
            ),
        ):
            problem = None if url is None else policy.url_problem(url)
            if problem is not None:
                return key, problem
        return None

    @property
    def target(self) -> str:
        if self.slack_webhook_url is not None:
            # Only the host goes to the database and to listings: the URL is the credential.
            return redact_url(self.slack_webhook_url.get_secret_value())
        target = self.slack_channel if self.slack_channel is not None else self.webhook_url
        assert target is not None  # _one_target guarantees it
        return target

    def entry(self) -> ConfigSubscription:
        """The subscription as the store syncs it: no secret, only whether there is one."""
        return ConfigSubscription(
            name=self.name,
            kind=self.kind,
            target=self.target,
            events=tuple(self.events),
            states=tuple(self.states),
            account_service_ids=tuple(self.account_service_ids),
            image_version_ids=tuple(self.image_version_ids),
            label_glob=self.label_glob,
            has_secret=bool(self.config_secrets),
            mention_on=tuple(self.mention_on),
            mention=tuple(self.mention),
            digest=self.digest,
        )


class NoSuchWebhook(LookupError):
    """The name given is not a webhook subscription in the configuration."""


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    clanforge: ClanforgeSettings
    poll: PollSettings = PollSettings()
    detect: DetectSettings = DetectSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    slack: SlackSettings = SlackSettings()
    # No [server] section: no HTTP server (several replicas in one test need no ports).
    server: ServerSettings | None = None
    delivery: DeliverySettings = DeliverySettings()
    network: NetworkSettings = NetworkSettings()
    retention: RetentionSettings = RetentionSettings()
    log: LogSettings = LogSettings()
    watch: list[WatchSettings] = Field(default_factory=list)
    subscription: list[SubscriptionSettings] = Field(default_factory=list)

    def command_account_services(self) -> frozenset[int]:
        """The account services ``/imagewatch add`` may watch: ``[slack]
        command_account_services``, or by default those the file's watches and accounts name
        (a channel member must not spend the default credential on any account service)."""
        if self.slack.command_account_services is not None:
            return frozenset(self.slack.command_account_services)
        found = {w.account_service_id for w in self.watch}
        for account in self.clanforge.account:
            found.update(account.account_service_ids)
        return frozenset(found)

    def secret_values(self) -> list[str]:
        """Every secret the file holds, and each Clanforge credential as its Basic header
        carries it: what logs and error texts must never show a piece of."""
        found: list[str] = []

        def collect(node: object) -> None:
            if isinstance(node, SecretStr):
                found.append(node.get_secret_value())
            elif isinstance(node, BaseModel):
                for name in type(node).model_fields:
                    collect(getattr(node, name))
            elif isinstance(node, list | tuple):
                for item in node:
                    collect(item)

        collect(self)
        for credential in self.clanforge.credentials():
            pair = f"{credential.access_key}:{credential.secret_key}"
            found.append(base64.b64encode(pair.encode()).decode())
        return found

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen_names: set[str] = set()
        for sub in self.subscription:
            if sub.name in seen_names:
                raise ValueError(f"subscription name {sub.name!r} is used twice")
            seen_names.add(sub.name)
            if sub.slack_channel is not None and self.slack.bot_token is None:
                raise ValueError(
                    f"subscription {sub.name!r} posts to a Slack channel "
                    "but slack.bot_token is not set"
                )
        seen_watches: set[tuple[int, int]] = set()
        for w in self.watch:
            key = (w.account_service_id, w.image_version_id)
            if key in seen_watches:
                raise ValueError(f"watch {key[0]}/{key[1]} is listed twice")
            seen_watches.add(key)
            if self.clanforge.credential_for(w.account_service_id) is None:
                raise ValueError(
                    f"watch {key[0]}/{key[1]}: no [[clanforge.account]] lists account service "
                    f"{key[0]} and there is no default access_key"
                )
        for asid in self.discovery.account_service_ids:
            if self.clanforge.credential_for(asid) is None:
                raise ValueError(f"discovery: no credential may see account service {asid}")
        return self

    def webhook_subscription(self, name: str) -> WebhookSubscription:
        """The webhook subscription ``name`` as the sink takes it, secrets and template resolved
        from the file (it need not be in the database: ``notifier webhook test``)."""
        found = next((s for s in self.subscription if s.name == name), None)
        if found is None or found.webhook_url is None:
            names = ", ".join(s.name for s in self.subscription if s.webhook_url) or "none"
            raise NoSuchWebhook(
                f"no webhook subscription named {name!r} (webhook subscriptions: {names})"
            )
        return WebhookSubscription(
            id=0,
            name=found.name,
            url=found.webhook_url,
            signing_secrets=found.signing_secrets,
            template=found.body_template,
        )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, env: Mapping[str, str], path: str, file: Path) -> Any:
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(file, path, f"environment variable {name} is not set")

        return _VAR.sub(substitute, node)
    if isinstance(node, dict):
        return {
            key: _interpolate(value, env, f"{path}.{key}" if path else key, file)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(item, env, f"{path}[{i}]", file) for i, item in enumerate(node)]
    return node


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _problem(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{message}, got {error['input']!r}"
    return message


def parse_config(text: str, env: Mapping[str, str], file: Path | str = "<config>") -> Settings:
    """Settings from TOML text; raises :class:`ConfigError` naming the first problem."""
    file = Path(file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    data = _interpolate(raw, env, "", file)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        # An unknown key usually explains a "required" one next to it (a typo): report it first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc = first["loc"]
        # Model-level validators report on the object itself; name the list entry at least.
        raise ConfigError(file, _key_path(loc) or "(top level)", _problem(first)) from None
    policy = settings.network.policy()
    for i, sub in enumerate(settings.subscription):
        found = sub.address_problem(policy)
        if found is not None:
            raise ConfigError(file, f"subscription[{i}].{found[0]}", found[1])
    return settings


def load_config(path: Path | str, env: Mapping[str, str]) -> Settings:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from None
    settings = parse_config(text, env, path)
    anchored = anchor_sqlite_url(settings.database.url, path.parent)
    if anchored == settings.database.url:
        return settings
    return settings.model_copy(update={"database": DatabaseSettings(url=anchored)})


def anchor_sqlite_url(url: str, base: Path) -> str:
    """A relative SQLite path made absolute against ``base``, the configuration file's
    directory: the same file whichever directory a command is started from."""
    database = sqlite_file(url)
    if database is None or database.startswith("file:") or Path(database).is_absolute():
        return url
    absolute = os.path.abspath(base / database)  # absolute, with any ../ folded away
    return make_url(url).set(database=absolute).render_as_string(hide_password=False)


def config_path(cli_value: str | None, env: Mapping[str, str]) -> Path:
    if cli_value:
        return Path(cli_value)
    return Path(env.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)
