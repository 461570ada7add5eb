"""The status page: server-rendered HTML, refreshing itself, readable on a phone.

``/`` lists the watches (state badge, progress bar, ETA as a relative time, last error) and the
deliveries in flight with the replica holding each; ``/watches/{id}`` shows one watch with a
timeline of its events. Only a meta refresh, no JavaScript, no external assets.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from notifier.api.deps import DEPS_KEY, ApiDeps
from notifier.api.guards import shows_details
from notifier.api.timeline import relative_time, state_colour, timeline_svg
from notifier.store.events import events_page
from notifier.store.outbox import list_deliveries
from notifier.store.watches import count_watches, get_watch, list_watches

REFRESH_SECONDS = 5
WATCHES_PER_PAGE = 100
TIMELINE_EVENTS = 200

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("notifier.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["colour"] = state_colour


def _render(template: str, **context: Any) -> web.Response:
    html = _ENV.get_template(template).render(refresh=REFRESH_SECONDS, **context)
    return web.Response(text=html, content_type="text/html")


async def index(request: web.Request) -> web.Response:
    """A page of watches at a time: the page refreshes itself every few seconds, and a studio
    may watch thousands of image versions (10,000 cards took 0.25 s of the event loop to load
    and render, and made 6 MB of HTML, every refresh of every open tab)."""
    deps = request.app[DEPS_KEY]
    page = _page_number(request)
    now = deps.clock()
    total = await count_watches(deps.engine)
    pages = max(1, -(-total // WATCHES_PER_PAGE))
    watches = (
        await list_watches(
            deps.engine, limit=WATCHES_PER_PAGE, offset=(page - 1) * WATCHES_PER_PAGE
        )
        if page <= pages
        else []
    )
    details = shows_details(request)
    pending = await list_deliveries(deps.engine, "pending", limit=50)
    dead = await list_deliveries(deps.engine, "dead", limit=10)
    return _render(
        "index.html",
        title="Clanforge builds",
        watches=watches,
        total=total,
        page=page,
        pages=pages,
        first=(page - 1) * WATCHES_PER_PAGE + 1,
        pending=pending,
        dead=dead,
        when=lambda value: relative_time(value, now),
        replica_id=deps.replica_id if details else None,
        details=details,
        now=now,
    )


def _page_number(request: web.Request) -> int:
    text = request.query.get("page", "1")
    # Length first: int() refuses (with a ValueError) numbers of thousands of digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) < 1:
        raise web.HTTPBadRequest(text=f"page must be a whole number from 1, not {text!r}")
    return int(text)


async def watch_page(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    text = request.match_info["id"]
    # Past what a database integer holds is no watch: asking the database would fail instead.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise web.HTTPNotFound(text=f"watch {text[:20]!r} does not exist")
    watch_id = int(text)
    watch = await get_watch(deps.engine, watch_id)
    if watch is None:
        raise web.HTTPNotFound(text=f"watch {watch_id} does not exist")
    now = deps.clock()
    events, _ = await events_page(deps.engine, limit=TIMELINE_EVENTS, watch_id=watch_id)
    return _render(
        "watch.html",
        title=watch.label or f"image version {watch.image_version_id}",
        watch=watch,
        events=events,
        timeline=Markup(timeline_svg(events, now)),  # noqa: S704 - built from escaped parts
        when=lambda value: relative_time(value, now),
        replica_id=deps.replica_id if shows_details(request) else None,
        now=now,
    )


def register(app: web.Application, deps: ApiDeps) -> None:
    del deps
    app.router.add_get("/", index)
    app.router.add_get("/watches/{id}", watch_page)
