"""The OpenAPI 3.1 document of the admin API, built from the same models that validate requests.

Generating the schemas from :mod:`notifier.api.schemas` keeps the document true by
construction; the Schemathesis test checks the paths and status codes against the live server.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from notifier.api.deps import ApiDeps
from notifier.api.rest import MAX_PAGE, PREFIX
from notifier.api.schemas import REQUEST_MODELS, RESPONSE_MODELS
from notifier.core.events import EVENT_TYPES
from notifier.core.ids import MAX_ID
from notifier.core.status import STATE_NAMES
from notifier.store.watches import SOURCES

OPENAPI_PATH = f"{PREFIX}/openapi.json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, **_json_content("ErrorBody")}


_COMMON_ERRORS = {
    "401": _error("Missing or wrong bearer token"),
    "403": _error("Sent from another origin"),
    "415": _error("A state-changing request without Content-Type: application/json"),
    "421": _error("Host is not a loopback name while no admin token is set"),
}
_BODY_ERRORS = {
    "400": _error("Body is not a JSON object"),
    "413": _error("Body is too large"),
    "422": _error("Body does not validate"),
}
_QUERY_ERRORS = {"400": _error("A query parameter is malformed")}
_NOT_FOUND = {"404": _error("No such id")}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}
_POSITIVE = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page size")


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, **_COMMON_ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": True, **_json_content(body)}
        op["responses"].update(_BODY_ERRORS)
    if parameters:
        op["parameters"] = parameters
    return op


def _listing(summary: str, schema: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """A GET of a list narrowed by query parameters, one of which may be malformed (400)."""
    return _op(summary, {"200": _ok(schema), **_QUERY_ERRORS}, parameters=parameters)


def _ok(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, **_json_content(name)}


def _rotate_op() -> dict[str, Any]:
    """The body is optional (no body: a secret is generated), unlike every other POST's."""
    op = _op(
        "Give a webhook a new signing secret; the old one signs too during the overlap",
        {
            "200": _ok("SecretRotated", "The new secret, once"),
            "409": _error("Comes from the configuration file, or is not a webhook"),
            **_NOT_FOUND,
        },
        body="SecretRotate",
    )
    op["requestBody"]["required"] = False
    return op


def build_openapi() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in REQUEST_MODELS
    ] + [(m, "serialization") for m in RESPONSE_MODELS]
    _, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    watch_filters = [
        _query("active", {"type": "boolean"}, "Only active (true) or paused (false) watches"),
        _query("account_service_id", _POSITIVE, "Only this account service"),
        _query("image_version_id", _POSITIVE, "Only this image version"),
        _query("source", {"enum": list(SOURCES)}, "Where the watch came from"),
        _query("state", {"enum": list(STATE_NAMES.values())}, "Only watches in this state"),
    ]
    watch_item = f"{PREFIX}/watches/{{id}}"
    paths: dict[str, Any] = {
        f"{PREFIX}/watches": {
            "get": _listing("List watches", "WatchList", watch_filters),
            "post": _op(
                "Watch an image version",
                {"201": _ok("WatchOut", "Created"), "409": _error("Already watched")},
                body="WatchCreate",
            ),
        },
        watch_item: {
            "parameters": [_ID_PARAM],
            "get": _op("Show a watch", {"200": _ok("WatchOut"), **_NOT_FOUND}),
            "patch": _op(
                "Set a watch's owners (Slack users and user groups mentioned when it fails)",
                {
                    "200": _ok("WatchOut"),
                    "409": _error("Comes from the configuration file: set owners there"),
                    **_NOT_FOUND,
                },
                body="WatchPatch",
            ),
            "delete": _op(
                "Stop watching and forget the history",
                {
                    "204": {"description": "Removed"},
                    "409": _error("Comes from the configuration file"),
                    **_NOT_FOUND,
                },
            ),
        },
        f"{watch_item}/pause": {
            "parameters": [_ID_PARAM],
            "post": _op("Stop polling a watch", {"200": _ok("WatchOut"), **_NOT_FOUND}),
        },
        f"{watch_item}/resume": {
            "parameters": [_ID_PARAM],
            "post": _op("Poll a paused watch again", {"200": _ok("WatchOut"), **_NOT_FOUND}),
        },
        f"{PREFIX}/subscriptions": {
            "get": _op("List subscriptions", {"200": _ok("SubscriptionList")}),
            "post": _op(
                "Add a subscription",
                {
                    "201": _ok("SubscriptionCreated", "Created; a signed webhook's secret, once"),
                    "409": _error("Name taken"),
                },
                body="SubscriptionCreate",
            ),
        },
        f"{PREFIX}/subscriptions/{{id}}": {
            "parameters": [_ID_PARAM],
            "delete": _op(
                "Remove a subscription added at run time",
                {
                    "204": {"description": "Removed"},
                    "409": _error("Comes from the configuration file"),
                    **_NOT_FOUND,
                },
            ),
        },
        f"{PREFIX}/subscriptions/{{id}}/rotate-secret": {
            "parameters": [_ID_PARAM],
            "post": _rotate_op(),
        },
        f"{PREFIX}/events": {
            "get": _listing(
                "Event history, newest first",
                "EventPage",
                [
                    _LIMIT,
                    _query("before", _POSITIVE, "Cursor: next_before of the previous page"),
                    _query("watch_id", _POSITIVE, "Only this watch"),
                    _query("image_version_id", _POSITIVE, "Only this image version"),
                    _query("type", {"enum": list(EVENT_TYPES)}, "Only this event type"),
                ],
            )
        },
        f"{PREFIX}/deliveries": {
            "get": _listing(
                "Deliveries, newest first",
                "DeliveryList",
                [
                    _LIMIT,
                    _query(
                        "status",
                        {"enum": ["pending", "delivered", "dead", "held", "silenced"]},
                        "Only these",
                    ),
                ],
            )
        },
        f"{PREFIX}/silences": {
            "get": _listing(
                "Active silences, the soonest to end first",
                "SilenceList",
                [_query("all", {"type": "boolean"}, "Ended silences too")],
            ),
            "post": _op(
                "Silence what the matchers name, from now for a while",
                {"201": _ok("SilenceOut", "Created")},
                body="SilenceCreate",
            ),
        },
        f"{PREFIX}/silences/{{id}}": {
            "parameters": [_ID_PARAM],
            "get": _op("Show a silence", {"200": _ok("SilenceOut"), **_NOT_FOUND}),
        },
        f"{PREFIX}/silences/{{id}}/expire": {
            "parameters": [_ID_PARAM],
            "post": _op(
                "End a silence now (kept for the record); its held live messages are updated",
                {
                    "200": _ok("SilenceOut"),
                    "409": _error("The silence had already ended"),
                    **_NOT_FOUND,
                },
            ),
        },
        f"{PREFIX}/deliveries/retry": {
            "post": _op(
                "Send dead or pending deliveries again now",
                {"200": _ok("RetryResult")},
                body="DeliveryRetry",
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clanforge-notifier admin API",
            "version": "1",
            "description": "Every call needs `Authorization: Bearer <server.admin_token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def register(app: web.Application, deps: ApiDeps) -> None:
    del deps
    document = build_openapi()

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, serve)
