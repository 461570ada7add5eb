"""Why a poll of Clanforge gave us no status, in the few kinds the rest of the service acts on.

The poller backs off, the detector raises ``watch.poll_failing`` and the status page shows the
message, so the reason is a small closed set (a machine can branch on it) and the message is one
line a person can act on. Neither ever carries a credential.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Final

CREDENTIALS_REJECTED: Final = "credentials_rejected"
"""401: the access/secret key pair is wrong or was revoked."""
ACCESS_DENIED: Final = "access_denied"
"""403: the keys are valid but may not see this account service."""
NOT_FOUND: Final = "not_found"
"""404: no such image version (under this account service)."""
RATE_LIMITED: Final = "rate_limited"
"""429: slow down; ``retry_after`` says for how long when upstream told us."""
UNAVAILABLE: Final = "unavailable"
"""5xx, timeout, refused or reset connection, truncated body: worth retrying as is."""
BAD_REPLY: Final = "bad_reply"
"""Upstream answered, but not with a status we can use (HTML, wrong shape, ``success: false``)."""

REASONS: Final = frozenset(
    {CREDENTIALS_REJECTED, ACCESS_DENIED, NOT_FOUND, RATE_LIMITED, UNAVAILABLE, BAD_REPLY}
)


@dataclass(eq=False, repr=False)
class UpstreamError(Exception):
    """A failed status fetch: what kind of failure, and the one line to show for it."""

    reason: str
    message: str
    _: KW_ONLY
    status: int | None = None
    retry_after: float | None = None
    credential: str | None = None
    """The name of the credential pair the request was made with, when one was."""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown upstream error reason {self.reason!r}")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"UpstreamError(reason={self.reason!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r}, message={self.message!r})"
        )
