"""The admin REST API, ``/api/v1``: watches, subscriptions, events, deliveries."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from notifier.api.deps import DEPS_KEY, ApiDeps
from notifier.api.errors import ApiError, not_found
from notifier.api.schemas import (
    DeliveryList,
    DeliveryOut,
    DeliveryRetry,
    EventOut,
    EventPage,
    RetryResult,
    SecretRotate,
    SecretRotated,
    SilenceCreate,
    SilenceList,
    SilenceOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionOut,
    WatchCreate,
    WatchList,
    WatchOut,
    WatchPatch,
)
from notifier.config import check_webhook_url, sends_in_clear_text
from notifier.core.events import EVENT_TYPES
from notifier.core.ids import BadId, parse_id
from notifier.core.mentions import DEFAULT_MENTION_ON
from notifier.core.silences import BadSilence, Matchers, new_silence
from notifier.core.status import state_id_for_name
from notifier.core.webhook_secrets import new_secret
from notifier.notify.guarded_http import resolve_problem
from notifier.notify.template import TemplateProblem, check_template
from notifier.store.events import events_page
from notifier.store.outbox import DeliveryStatus, list_deliveries, retry_deliveries
from notifier.store.silences import (
    add_silence,
    end_silences,
    expire_silence,
    get_silence,
    list_silences,
)
from notifier.store.subscriptions import (
    CannotRotate,
    DuplicateSubscription,
    add_subscription,
    list_subscriptions,
    remove_subscription,
    rotate_secret,
)
from notifier.store.watches import (
    SOURCES,
    DuplicateWatch,
    add_watch,
    get_watch,
    list_watches,
    remove_watch_by_id,
    set_watch_active,
    set_watch_owners,
)

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_PAGE = 500

M = TypeVar("M", bound=BaseModel)


def _deps(request: web.Request) -> ApiDeps:
    return request.app[DEPS_KEY]


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _secret_json(model: BaseModel, status: int = 200) -> web.Response:
    """An answer carrying a signing secret: no cache or proxy may keep a copy of it."""
    response = _json(model, status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The request body as ``model``; with ``optional``, no body at all reads as ``{}``."""
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "bad_json", "request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        raise ApiError(422, "invalid", f"{where}: {message}") from None


def _int_query(request: web.Request, name: str, default: int | None = None) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        return parse_id(text)
    except BadId as exc:
        raise ApiError(400, "bad_query", f"{name} {exc}") from None


def _limit(request: web.Request, default: int = 50) -> int:
    value = _int_query(request, "limit", default)
    assert value is not None
    return min(value, MAX_PAGE)


def _bool_query(request: web.Request, name: str) -> bool | None:
    text = request.query.get(name)
    if text is None:
        return None
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise ApiError(400, "bad_query", f"{name} must be true or false, got {text!r}")


def _path_id(request: web.Request) -> int:
    text = request.match_info["id"]
    try:
        return parse_id(text)
    except BadId as exc:
        raise ApiError(404, "not_found", f"no such id: id {exc}") from None


# ---------------------------------------------------------------- watches


async def list_watches_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    source = request.query.get("source")
    if source is not None and source not in SOURCES:
        raise ApiError(400, "bad_query", f"source must be one of {', '.join(SOURCES)}")
    state = request.query.get("state")
    state_id = None
    if state is not None:
        state_id = state_id_for_name(state)
        if state_id is None:
            raise ApiError(400, "bad_query", f"unknown state {state!r}")
    watches = await list_watches(
        deps.engine,
        active=_bool_query(request, "active"),
        account_service_id=_int_query(request, "account_service_id"),
        image_version_id=_int_query(request, "image_version_id"),
        source=source,
    )
    if state_id is not None:
        watches = [w for w in watches if w.status is not None and w.status.state_id == state_id]
    return _json(WatchList(items=[WatchOut.model_validate(w) for w in watches]))


async def add_watch_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    body = await _body(request, WatchCreate)
    try:
        watch_id = await add_watch(
            deps.engine,
            body.account_service_id,
            body.image_version_id,
            body.label,
            "api",
            deps.clock(),
            owners=body.owners,
        )
    except DuplicateWatch as exc:
        raise ApiError(409, "duplicate", str(exc)) from None
    log.info("api: watching %d/%d", body.account_service_id, body.image_version_id)
    return _json(await _watch(deps, watch_id), status=201)


async def _watch(deps: ApiDeps, watch_id: int) -> BaseModel:
    watch = await get_watch(deps.engine, watch_id)
    if watch is None:
        raise not_found(f"watch {watch_id}")
    return WatchOut.model_validate(watch)


async def show_watch_handler(request: web.Request) -> web.Response:
    return _json(await _watch(_deps(request), _path_id(request)))


async def patch_watch_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    watch_id = _path_id(request)
    body = await _body(request, WatchPatch)
    await _refuse_config_watch(deps, watch_id, "set its owners in")
    if not await set_watch_owners(deps.engine, watch_id, body.owners):
        raise not_found(f"watch {watch_id}")
    log.info("api: watch %d owners set (%d)", watch_id, len(body.owners))
    return _json(await _watch(deps, watch_id))


async def _refuse_config_watch(deps: ApiDeps, watch_id: int, change: str) -> None:
    """A watch from the configuration file is the file's: changed or removed here, the next start
    would set it back from the file, so the answer says where to make the change instead."""
    watch = await get_watch(deps.engine, watch_id)
    if watch is not None and watch.source == "config":
        raise ApiError(
            409,
            "from_config",
            f"watch {watch_id} (image version {watch.image_version_id}) comes from the "
            f"configuration file; {change} its [[watch]] entry there",
        )


async def remove_watch_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    watch_id = _path_id(request)
    await _refuse_config_watch(deps, watch_id, "remove")
    if not await remove_watch_by_id(deps.engine, watch_id):
        raise not_found(f"watch {watch_id}")
    log.info("api: watch %d removed", watch_id)
    return web.Response(status=204)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    deps = _deps(request)
    watch_id = _path_id(request)
    if not await set_watch_active(deps.engine, watch_id, active, deps.clock()):
        raise not_found(f"watch {watch_id}")
    log.info("api: watch %d %s", watch_id, "resumed" if active else "paused")
    return _json(await _watch(deps, watch_id))


async def pause_watch_handler(request: web.Request) -> web.Response:
    return await _set_active(request, False)


async def resume_watch_handler(request: web.Request) -> web.Response:
    return await _set_active(request, True)


# ---------------------------------------------------------------- subscriptions

# The request's fields the store keeps as they are; the rest (filters, the secret) are derived.
_STORED_AS_GIVEN = {
    "name",
    "kind",
    "target",
    "preset",
    "template",
    "mention_on",
    "mention",
    "digest",
}


async def list_subscriptions_handler(request: web.Request) -> web.Response:
    subs = await list_subscriptions(_deps(request).engine)
    return _json(SubscriptionList(items=[SubscriptionOut.model_validate(s) for s in subs]))


async def add_subscription_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    body = await _body(request, SubscriptionCreate)
    if body.kind == "webhook":
        try:
            check_webhook_url(body.target)
        except ValueError as exc:
            raise ApiError(422, "invalid", f"target: {exc}") from None
        if sends_in_clear_text(body.target):
            # The configuration's rule; the API has no allow_http to send in clear text.
            raise ApiError(422, "invalid", "target: must be https:// (http only to loopback)")
        problem = await resolve_problem(deps.settings.network.policy(), body.target)
        if problem is not None:
            raise ApiError(422, "invalid", f"target: {problem}")
        if body.template is not None:
            await _check_template(body.template)
        if body.mention or tuple(body.mention_on) != DEFAULT_MENTION_ON:
            raise ApiError(
                422, "invalid", "mention, mention_on: only for slack_channel (webhooks get owners)"
            )
    elif deps.settings.slack.bot_token is None:
        raise ApiError(
            422, "invalid", "kind: slack_channel needs slack.bot_token in the configuration"
        )
    secret = None
    if body.kind == "webhook" and not body.unsigned:
        secret = body.secret if body.secret is not None else new_secret()
    try:
        sub_id = await add_subscription(
            deps.engine,
            **body.model_dump(include=_STORED_AS_GIVEN),
            filters=body.filters(),
            source="api",
            now=deps.clock(),
            secret=secret,
        )
    except DuplicateSubscription as exc:
        raise ApiError(409, "duplicate", str(exc)) from None
    log.info(
        "api: subscription %r added%s",
        body.name,
        " (signed)" if secret is not None else " (unsigned)" if body.kind == "webhook" else "",
    )
    (created,) = await list_subscriptions(deps.engine, sub_id)
    shown = SubscriptionCreated.model_validate({**dataclasses.asdict(created), "secret": secret})
    return _secret_json(shown, status=201)


async def _check_template(source: str) -> None:
    """The check ``check-config`` makes, with its bounds, in a worker thread: rendering every
    sample event is CPU work the event loop must not wait on."""
    try:
        await asyncio.to_thread(check_template, source)
    except TemplateProblem as exc:
        raise ApiError(422, "invalid", f"template: {exc}") from None


async def rotate_secret_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    sub_id = _path_id(request)
    body = await _body(request, SecretRotate, optional=True)
    secret = body.secret if body.secret is not None else new_secret()
    overlap = timedelta(seconds=deps.settings.delivery.secret_overlap_seconds)
    try:
        rotated = await rotate_secret(deps.engine, sub_id, secret, deps.clock(), overlap)
    except CannotRotate as exc:
        code = "from_config" if exc.from_config else "not_a_webhook"
        raise ApiError(409, code, str(exc)) from None
    if rotated is None:
        raise not_found(f"subscription {sub_id}")
    log.info("api: subscription %r has a new signing secret", rotated.name)
    return _secret_json(
        SecretRotated(
            id=sub_id,
            name=rotated.name,
            secret=secret,
            previous_secret_until=rotated.previous_secret_until,
        )
    )


async def remove_subscription_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    sub_id = _path_id(request)
    found = await list_subscriptions(deps.engine, sub_id)
    if not found:
        raise not_found(f"subscription {sub_id}")
    if found[0].source == "config":
        raise ApiError(
            409,
            "from_config",
            f"subscription {found[0].name!r} comes from the configuration file; remove it there",
        )
    if not await remove_subscription(deps.engine, sub_id):
        raise not_found(f"subscription {sub_id}")
    log.info("api: subscription %r removed", found[0].name)
    return web.Response(status=204)


# ---------------------------------------------------------------- events


async def list_events_handler(request: web.Request) -> web.Response:
    event_type = request.query.get("type")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise ApiError(400, "bad_query", f"unknown event type {event_type!r}")
    events, next_before = await events_page(
        _deps(request).engine,
        limit=_limit(request),
        before=_int_query(request, "before"),
        watch_id=_int_query(request, "watch_id"),
        image_version_id=_int_query(request, "image_version_id"),
        event_type=event_type,
    )
    return _json(
        EventPage(items=[EventOut.model_validate(e) for e in events], next_before=next_before)
    )


# ---------------------------------------------------------------- deliveries

_DELIVERY_STATUSES: dict[str, DeliveryStatus] = {
    "pending": "pending",
    "delivered": "delivered",
    "dead": "dead",
    "held": "held",
    "silenced": "silenced",
}


async def list_deliveries_handler(request: web.Request) -> web.Response:
    status = request.query.get("status")
    chosen = None if status is None else _DELIVERY_STATUSES.get(status)
    if status is not None and chosen is None:
        raise ApiError(
            400, "bad_query", "status must be pending, delivered, dead, held or silenced"
        )
    deliveries = await list_deliveries(_deps(request).engine, chosen, _limit(request, 100))
    return _json(DeliveryList(items=[DeliveryOut.model_validate(d) for d in deliveries]))


async def retry_deliveries_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    body = await _body(request, DeliveryRetry)
    if not body.ids and not body.all_dead:
        raise ApiError(422, "invalid", "give ids or all_dead: true")
    retried = await retry_deliveries(
        deps.engine, deps.clock(), ids=body.ids, all_dead=body.all_dead
    )
    log.info("api: %d delivery(ies) put back in line", retried)
    return _json(RetryResult(retried=retried))


# ---------------------------------------------------------------- silences


async def list_silences_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    include_ended = _bool_query(request, "all") or False
    silences = await list_silences(deps.engine, deps.clock(), include_ended=include_ended)
    return _json(SilenceList(items=[SilenceOut.model_validate(s) for s in silences]))


async def add_silence_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    body = await _body(request, SilenceCreate)
    now = deps.clock()
    try:
        asked = new_silence(
            now,
            Matchers(body.image_version_id, body.account_service_id, body.label_glob),
            duration=body.for_,
            until=body.until,
            reason=body.reason,
            created_by=body.created_by,
        )
    except BadSilence as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    silence = await add_silence(deps.engine, asked, source="api", now=now)
    deps.wake_dispatcher()  # the live messages it holds show the mute now
    log.info("api: silence %d holds %s", silence.id, silence.matches)
    return _json(SilenceOut.model_validate(silence), status=201)


async def show_silence_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    silence_id = _path_id(request)
    silence = await get_silence(deps.engine, silence_id, deps.clock())
    if silence is None:
        raise not_found(f"silence {silence_id}")
    return _json(SilenceOut.model_validate(silence))


async def expire_silence_handler(request: web.Request) -> web.Response:
    deps = _deps(request)
    silence_id = _path_id(request)
    now = deps.clock()
    expired = await expire_silence(deps.engine, silence_id, now, "api")
    if expired is None:
        raise not_found(f"silence {silence_id}")
    if expired.already:
        raise ApiError(409, "ended", f"silence {silence_id} had already ended")
    await end_silences(deps.engine, now)
    deps.wake_dispatcher()
    log.info("api: silence %d expired", silence_id)
    found = await get_silence(deps.engine, silence_id, now)
    assert found is not None
    return _json(SilenceOut.model_validate(found))


def register(app: web.Application, deps: ApiDeps) -> None:
    del deps  # handlers read it from the app, so tests can build apps side by side
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("GET", "/watches", list_watches_handler),
        ("POST", "/watches", add_watch_handler),
        ("GET", "/watches/{id}", show_watch_handler),
        ("PATCH", "/watches/{id}", patch_watch_handler),
        ("DELETE", "/watches/{id}", remove_watch_handler),
        ("POST", "/watches/{id}/pause", pause_watch_handler),
        ("POST", "/watches/{id}/resume", resume_watch_handler),
        ("GET", "/subscriptions", list_subscriptions_handler),
        ("POST", "/subscriptions", add_subscription_handler),
        ("DELETE", "/subscriptions/{id}", remove_subscription_handler),
        ("POST", "/subscriptions/{id}/rotate-secret", rotate_secret_handler),
        ("GET", "/events", list_events_handler),
        ("GET", "/deliveries", list_deliveries_handler),
        ("POST", "/deliveries/retry", retry_deliveries_handler),
        ("GET", "/silences", list_silences_handler),
        ("POST", "/silences", add_silence_handler),
        ("GET", "/silences/{id}", show_silence_handler),
        ("POST", "/silences/{id}/expire", expire_silence_handler),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, handler)
