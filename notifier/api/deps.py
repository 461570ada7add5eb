"""What route modules get to work with, and how they plug into the app.

A route module exposes ``register(app, deps)``; adding it to ``notifier.api.REGISTRARS`` is the
one line that serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import Settings
from notifier.core.clock import Clock
from notifier.metrics import Metrics


def _always_ready() -> bool:
    return True


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class ApiDeps:
    engine: AsyncEngine
    settings: Settings
    clock: Clock
    metrics: Metrics = field(default_factory=Metrics)
    replica_id: str = ""
    scheduler_running: Callable[[], bool] = _always_ready
    """For ``/readyz``: whether this process's poll and dispatch loops are going."""
    wake_dispatcher: Callable[[], None] = _nothing
    """Something was queued to send now (a mute's message update): send it without waiting."""
    slack: AsyncWebClient | None = None
    """The bot's client, for answers only the clicking person sees (chat.postEphemeral)."""


Registrar = Callable[[web.Application, ApiDeps], None]

DEPS_KEY: web.AppKey[ApiDeps] = web.AppKey("deps", ApiDeps)
