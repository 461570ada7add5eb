"""The service's HTTP app on a real socket for tests of the admin API, the status page and the
server's guards: valid settings, and a client that sends the admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api.app import build_app
from notifier.api.deps import ApiDeps
from notifier.api.server import serve
from notifier.config import Settings
from notifier.metrics import Metrics
from tests.support.clock import HandClock

ADMIN_TOKEN = "test-admin-token-0123456789"
HOOK = {
    "name": "chatops",
    "kind": "webhook",
    "target": "https://chatops.example.com/hook",
    "events": ["imageversion.failed"],
}
"""A webhook subscription as a client of ``POST /api/v1/subscriptions`` sends it."""


def make_settings(**sections: Any) -> Settings:
    """Valid settings for in-process servers; the Clanforge keys are never used by these tests."""
    data: dict[str, Any] = {
        "clanforge": {"access_key": "ak-test", "secret_key": "sk-test"},
        "server": {"listen": "127.0.0.1:0", "admin_token": ADMIN_TOKEN},
    }
    data.update(sections)
    return Settings.model_validate(data)


@dataclass
class ApiServer:
    """The service's HTTP app on a real socket, with a client that sends the admin token."""

    url: str
    session: aiohttp.ClientSession
    engine: AsyncEngine
    clock: HandClock
    deps: ApiDeps

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = ADMIN_TOKEN,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if method in ("POST", "PUT", "PATCH", "DELETE") and "json" not in kwargs:
            # As the CLI and any real client send it; the server refuses other types (guards).
            headers.setdefault("Content-Type", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.url + path.lstrip("/"), headers=headers, **kwargs
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


@asynccontextmanager
async def running_api(
    engine: AsyncEngine,
    settings: Settings | None = None,
    *,
    replica_id: str = "replica-a",
    scheduler_running: bool = True,
) -> AsyncIterator[ApiServer]:
    settings = settings or make_settings(slack={"bot_token": "xoxb-test"})
    assert settings.server is not None
    clock = HandClock()
    deps = ApiDeps(
        engine=engine,
        settings=settings,
        clock=clock,
        metrics=Metrics(),
        replica_id=replica_id,
        scheduler_running=lambda: scheduler_running,
    )
    async with serve(build_app(deps), settings.server) as url, aiohttp.ClientSession() as session:
        yield ApiServer(url, session, engine, clock, deps)
