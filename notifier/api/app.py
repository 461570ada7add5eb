"""The app factory: middlewares for auth and errors, then each route module's routes."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from notifier.api import guards
from notifier.api.deps import DEPS_KEY, ApiDeps, Registrar
from notifier.api.errors import ApiError, error_response

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
# Requests to the admin API are small JSON documents; anything bigger is a mistake or an attack.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API failures as JSON errors; the HTML pages keep aiohttp's own error pages."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes"
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error; the server log has the details")


def _auth(token: str | None) -> Middleware:
    expected = None if token is None else f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or not request.path.startswith(API_PREFIX):
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        # Constant time: how much of a guess matched must not show in the response time.
        if not hmac.compare_digest(given, expected):
            return error_response(
                401, "unauthorized", "missing or wrong Authorization: Bearer <server.admin_token>"
            )
        return await handler(request)

    return auth


def build_app(deps: ApiDeps, registrars: Sequence[Registrar] | None = None) -> web.Application:
    """The server's application; ``registrars`` defaults to :data:`notifier.api.REGISTRARS`."""
    if registrars is None:
        from notifier.api import REGISTRARS

        registrars = REGISTRARS
    server = deps.settings.server
    token = None
    if server is not None and server.admin_token is not None:
        token = server.admin_token.get_secret_value()
    # Errors outermost, so a 401 or 413 from below is shaped like every other API error.
    app = web.Application(middlewares=[_errors, _auth(token)], client_max_size=MAX_BODY_BYTES)
    app[DEPS_KEY] = deps
    guards.install(app, server)
    for register in registrars:
        register(app, deps)
    return app
