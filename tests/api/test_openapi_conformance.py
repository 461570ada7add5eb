"""Schemathesis against the live server: no 5xx, every response as the OpenAPI document says.

The server runs on a thread of its own (Schemathesis calls it synchronously) over a SQLite file;
the generated requests add, pause and remove watches and subscriptions as they go. Derandomized
so that a failure reproduces.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from notifier.api.app import build_app
from notifier.api.deps import ApiDeps
from notifier.api.openapi import build_openapi
from notifier.api.server import serve
from notifier.metrics import Metrics
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from tests.support.api import ADMIN_TOKEN, make_settings
from tests.support.clock import HandClock

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


class _ServerThread:
    """The app on 127.0.0.1 in a thread with its own event loop, until ``stop``."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.url = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error
        return self.url

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the test in start()
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        engine = create_engine(f"sqlite+aiosqlite:///{self._database}")
        try:
            await upgrade(engine)
            settings = make_settings(slack={"bot_token": "xoxb-test"})
            assert settings.server is not None
            deps = ApiDeps(engine=engine, settings=settings, clock=HandClock(), metrics=Metrics())
            async with serve(build_app(deps), settings.server) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            await engine.dispose()

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[str]:
    server = _ServerThread(tmp_path / "notifier.db")
    url = server.start()
    try:
        yield url.rstrip("/")
    finally:
        server.stop()


schema = schemathesis.openapi.from_dict(build_openapi())


@schema.parametrize()
@settings(
    derandomize=True,
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_response_matches_the_openapi_document(live_api: str, case: Any) -> None:
    case.call_and_validate(base_url=live_api, headers=AUTH, checks=CHECKS)


def test_every_api_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    settings = make_settings()
    deps = ApiDeps(
        engine=create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"),
        settings=settings,
        clock=HandClock(),
    )
    app = build_app(deps)
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and route.method != "HEAD"
        and route.resource.canonical != "/api/v1/openapi.json"
    }
    document = build_openapi()
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented
