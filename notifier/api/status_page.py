"""The status page: server-rendered HTML, refreshing itself, readable on a phone.

``/`` lists the watches (state badge, progress bar, ETA as a relative time, last error) and the
deliveries in flight with the replica holding each; ``/watches/{id}`` shows one watch with a
timeline of its events. Only a meta refresh, no JavaScript, no external assets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from notifier.api.deps import DEPS_KEY, ApiDeps
from notifier.api.guards import shows_details
from notifier.api.timeline import Band, relative_time, state_bands, state_colour, timeline_svg
from notifier.core.ids import BadId, parse_id
from notifier.core.status import STATE_NAMES
from notifier.store.events import events_page
from notifier.store.outbox import list_deliveries
from notifier.store.silences import held_events, list_silences
from notifier.store.subscriptions import list_subscriptions
from notifier.store.watches import WatchView, count_watches, get_watch, list_watches

REFRESH_SECONDS = 5
WATCHES_PER_PAGE = 100
TIMELINE_EVENTS = 200

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("notifier.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters["colour"] = state_colour

PAUSED, UNKNOWN = "Paused", "Unknown"
STATE_OPTIONS = (*STATE_NAMES.values(), PAUSED, UNKNOWN)


def is_paused(watch: WatchView) -> bool:
    return watch.paused_reason is not None or not watch.active


def shown_state(watch: WatchView) -> str:
    """A paused watch reads "Paused", whatever its job last did: "Unknown" after a 404 said
    nothing about why nothing moves."""
    if is_paused(watch):
        return PAUSED
    return watch.status.state if watch.status is not None else UNKNOWN


def resume_command(watch: WatchView) -> str:
    if watch.paused_reason is not None:
        return (
            f"notifier watch resume --image-version {watch.image_version_id} "
            f"--asid {watch.account_service_id}"
        )
    return f"POST /api/v1/watches/{watch.id}/resume"


def band_duration(band: Band) -> str:
    seconds = round((band.end - band.start).total_seconds())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


def _render(template: str, status: int = 200, **context: Any) -> web.Response:
    html = _ENV.get_template(template).render(
        refresh=REFRESH_SECONDS,
        shown_state=shown_state,
        is_paused=is_paused,
        resume_command=resume_command,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html")


async def index(request: web.Request) -> web.Response:
    """A page of watches at a time: the page refreshes itself every few seconds, and loading and
    rendering thousands of cards each time would hold up the event loop."""
    deps = request.app[DEPS_KEY]
    page = _page_number(request)
    state_filter = request.query.get("state", "")
    if state_filter and state_filter not in STATE_OPTIONS:
        raise web.HTTPBadRequest(
            text=f"state must be one of {', '.join(STATE_OPTIONS)}, not {state_filter!r}"
        )
    query = request.query.get("q", "").strip()
    now = deps.clock()
    offset = (page - 1) * WATCHES_PER_PAGE
    if state_filter or query:
        # A filter reads the whole list once; the unfiltered page reads one page of it.
        matching = _matching(await list_watches(deps.engine), state_filter, query)
        total = len(matching)
        watches = matching[offset : offset + WATCHES_PER_PAGE]
    else:
        total = await count_watches(deps.engine)
        watches = (
            await list_watches(deps.engine, limit=WATCHES_PER_PAGE, offset=offset)
            if offset < total
            else []
        )
    pages = max(1, -(-total // WATCHES_PER_PAGE))
    details = shows_details(request)
    pending = await list_deliveries(deps.engine, "pending", limit=50)
    dead = await list_deliveries(deps.engine, "dead", limit=10)
    # Where notifications go, and which webhooks are unsigned: for the token holder only (a
    # public page would tell a forger which receivers take unsigned requests).
    subscriptions = await list_subscriptions(deps.engine) if details else []
    silences = await list_silences(deps.engine, now)
    held = await held_events(deps.engine, [s.id for s in silences])

    def page_link(number: int) -> str:
        params = {"state": state_filter, "q": query, "page": str(number)}
        return "/?" + urlencode({k: v for k, v in params.items() if v})

    return _render(
        "index.html",
        title="Clanforge builds",
        watches=watches,
        total=total,
        page=page,
        pages=pages,
        first=offset + 1,
        pending=pending,
        dead=dead,
        subscriptions=subscriptions,
        silences=silences,
        held=held,
        when=lambda value: relative_time(value, now),
        next_try=lambda value: _next_try(value, now),
        page_link=page_link,
        state_options=STATE_OPTIONS,
        state_filter=state_filter,
        query=query,
        filtered=bool(state_filter or query),
        replica_id=deps.replica_id if details else None,
        details=details,
        now=now,
    )


def _matching(watches: Sequence[WatchView], state: str, query: str) -> list[WatchView]:
    needle = query.casefold()
    return [
        w
        for w in watches
        if (not state or shown_state(w) == state)
        and (not needle or needle in w.label.casefold() or needle in str(w.image_version_id))
    ]


def _next_try(when: datetime | None, now: datetime) -> str:
    """A retry whose time has come is due, not "1 min ago": it waits for the dispatcher."""
    if when is None or when <= now:
        return "due now"
    seconds = (when - now).total_seconds()
    return f"in {max(1, round(seconds))} s" if seconds < 30 else relative_time(when, now)


def _page_number(request: web.Request) -> int:
    text = request.query.get("page", "1")
    # Length first: int() refuses (with a ValueError) numbers of thousands of digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) < 1:
        raise web.HTTPBadRequest(text=f"page must be a whole number from 1, not {text!r}")
    return int(text)


async def watch_page(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    text = request.match_info["id"]
    now = deps.clock()
    try:
        watch_id = parse_id(text)
    except BadId:
        return _not_found(f"There is no watch {text[:20]!r}: watch ids are whole numbers.", now)
    watch = await get_watch(deps.engine, watch_id)
    if watch is None:
        return _not_found(f"Watch {watch_id} does not exist.", now)
    events, _ = await events_page(deps.engine, limit=TIMELINE_EVENTS, watch_id=watch_id)
    return _render(
        "watch.html",
        title=watch.label or f"image version {watch.image_version_id}",
        watch=watch,
        events=events,
        timeline=Markup(timeline_svg(events, now)),  # noqa: S704 - built from escaped parts
        bands=state_bands(events, now),
        duration=band_duration,
        when=lambda value: relative_time(value, now),
        replica_id=deps.replica_id if shows_details(request) else None,
        now=now,
    )


def _not_found(message: str, now: datetime) -> web.Response:
    return _render(
        "not_found.html", 404, title="Not found", message=message, replica_id="", now=now
    )


def register(app: web.Application, deps: ApiDeps) -> None:
    del deps
    app.router.add_get("/", index)
    app.router.add_get("/watches/{id}", watch_page)
