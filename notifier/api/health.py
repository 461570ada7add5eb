"""``/healthz`` (the process answers), ``/readyz`` (database reachable, loops running), and
``/metrics`` (Prometheus), for orchestrators and scrapers rather than people."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from notifier.api.deps import DEPS_KEY, ApiDeps
from notifier.api.schemas import Health
from notifier.metrics import CONTENT_TYPE
from notifier.store.engine import unreachable_because

log = logging.getLogger(__name__)


def _health(checks: dict[str, str]) -> web.Response:
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return web.Response(
        text=body.model_dump_json(), status=200 if ok else 503, content_type="application/json"
    )


async def healthz(request: web.Request) -> web.Response:
    return _health({"process": "ok"})


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    checks: dict[str, str] = {}
    problem = await unreachable_because(deps.engine)
    checks["database"] = "ok" if problem is None else f"unreachable: {problem}"
    checks["scheduler"] = "ok" if deps.scheduler_running() else "not running"
    return _health(checks)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    try:
        await deps.metrics.refresh(deps.engine)
    except (SQLAlchemyError, OSError):
        # The process's own counters are still worth scraping when the database is away.
        log.warning("metrics: database figures are stale, the database is unreachable")
    response = web.Response(body=deps.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def register(app: web.Application, deps: ApiDeps) -> None:
    del deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
