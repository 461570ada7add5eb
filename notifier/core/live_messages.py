"""What the Slack sink remembers of the one message it keeps up to date per channel and image
version: a posted message, or a first post that was started and never confirmed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifier.core.silences import MuteShown


@dataclass(frozen=True, slots=True)
class LiveMessageKey:
    """Which live message: a subscription's one message per image version. It names the stored
    row and, as the message's metadata, finds an interrupted first post again."""

    subscription_id: int
    account_service_id: int
    image_version_id: int


@dataclass(frozen=True, slots=True)
class LiveMessage:
    channel: str
    ts: str
    rendered: str | None = None
    """Fingerprint of what the message shows now (None: unknown, always update)."""


@dataclass(frozen=True, slots=True)
class PendingPost:
    """A first post that was started at ``since`` and whose ``ts`` was never stored.

    Either the post failed, or it reached Slack and the process died before storing the answer:
    the sink looks in the channel's history before posting again.
    """

    channel: str
    since: datetime


@dataclass(frozen=True, slots=True)
class LiveControls:
    """What the buttons of a live message need: its watch, the silence holding it, and where
    "Open" leads (None: ``[server] public_url`` is not set, no "Open" button)."""

    watch_id: int
    account_service_id: int
    image_version_id: int
    mute: MuteShown | None = None
    open_url: str | None = None
    buttons: bool = True
    """False when no click could be verified (no ``[slack] signing_secret``): the mute is still
    shown, the buttons are not."""
