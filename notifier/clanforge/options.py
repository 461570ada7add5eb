"""What the Clanforge side needs to know, as plain values: the configuration builds these.

Kept apart from :mod:`notifier.config` so that the client depends on its own inputs only, not on
the TOML schema (pydantic) above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_BASE_URL = "https://api.multiplay.co.uk"


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential pair with its own rate limit; ``account_service_ids`` empty means
    "every account service no other credential claims" (the default pair)."""

    name: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    requests_per_second: float
    burst: int
    account_service_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ClanforgeOptions:
    """The one Clanforge session's settings and every credential polled through it."""

    credentials: tuple[Credential, ...]
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10
    max_concurrency: int = 8
