"""What keeps a web page in a browser, and anyone without the token, out of the admin server.

Without a token the server listens on loopback only, and that is not enough: any page open in a
browser on the same machine can send "simple" cross-site requests to it (a ``text/plain`` POST
needs no preflight), and a page on a domain the attacker re-points at 127.0.0.1 (DNS rebinding)
reads the answers as its own. So:

- a state-changing API request must say ``Content-Type: application/json`` (a browser cannot send
  that cross-site without a preflight, which this server never grants): 415 otherwise;
- a request carrying an ``Origin`` must come from the server's own origin: 403 otherwise;
- without a token, the ``Host`` must be a loopback name or address: 421 otherwise;
- with a token, the status page and ``/metrics`` need it too (Bearer, or Basic with the token as
  password so a browser can log in), unless ``[server] public_status = true``;
- every response carries headers that keep it out of frames and scripts, and no version.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from notifier.api.errors import error_response
from notifier.config import ServerSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Slack signs its form-encoded posts; the signature, not the content type, proves who sent them.
_SIGNED_ELSEWHERE: Final = ("/slack/",)
# Probes must answer without credentials; they show no data.
_ALWAYS_OPEN: Final = frozenset({"/healthz", "/readyz"})
_API: Final = "/api/"

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Server": "clanforge-notifier",
}
PUBLIC_VIEW: Final = web.RequestKey("notifier.public_view", bool)
"""Request key: set when a page is shown without the token only because of ``public_status``."""
_REALM: Final = 'Basic realm="clanforge-notifier", charset="UTF-8"'


def is_loopback_name(host: str) -> bool:
    """``localhost`` (and its subdomains) or a loopback address, port or not."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if request.path.startswith(_API):
        return error_response(status, code, message)
    return web.Response(status=status, text=message + "\n")


def _same_origin(request: web.Request, origin: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return parts.netloc.lower() == request.host.lower()


def _token_matches(header: str, token: bytes) -> bool:
    """Bearer <token>, or Basic with the token as password (any user name)."""
    scheme, _, value = header.partition(" ")
    given = b""
    if scheme.lower() == "bearer":
        given = value.strip().encode()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        given = decoded.partition(b":")[2]
    # Constant time: how much of a guess matched must not show in the response time.
    return hmac.compare_digest(given, token)


def browser_guards(server: ServerSettings | None) -> Middleware:
    """The guards above, as one middleware; with no ``[server]`` only the headers apply."""
    token = None
    if server is not None and server.admin_token is not None:
        token = server.admin_token.get_secret_value().encode()
    pages_need_token = token is not None and not (server is not None and server.public_status)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if token is None and not is_loopback_name(request.host):
            return _refuse(
                request,
                421,
                "misdirected_request",
                "this server answers only to a loopback Host without server.admin_token",
            )
        if request.method in STATE_CHANGING:
            origin = request.headers.get("Origin")
            if origin is not None and not _same_origin(request, origin):
                return _refuse(request, 403, "forbidden", "cross-origin requests are not accepted")
            if not path.startswith(_SIGNED_ELSEWHERE) and request.content_type != (
                "application/json"
            ):
                return _refuse(
                    request,
                    415,
                    "unsupported_media_type",
                    "state-changing requests need Content-Type: application/json",
                )
        is_page = not path.startswith((_API, *_SIGNED_ELSEWHERE)) and path not in _ALWAYS_OPEN
        if (
            token is not None
            and is_page
            and not _token_matches(request.headers.get("Authorization", ""), token)
        ):
            if not pages_need_token:
                request[PUBLIC_VIEW] = True
                return await handler(request)
            response = web.Response(
                status=401,
                text="this page needs server.admin_token (as Bearer, or as the Basic password)\n",
            )
            response.headers["WWW-Authenticate"] = _REALM
            return response
        return await handler(request)

    return guard


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, aiohttp's own error pages included (an ``on_response_prepare``
    hook, not a middleware, for that reason)."""
    del request
    response.headers.update(SECURITY_HEADERS)


def shows_details(request: web.Request) -> bool:
    """Whether the page may show receivers' errors (host, port, body) and replica names: not to
    a visitor who is there only because the status page is public."""
    return not request.get(PUBLIC_VIEW, False)


def install(app: web.Application, server: ServerSettings | None) -> None:
    """Outermost guard first, so a refused request reaches neither auth nor handlers."""
    app.middlewares.insert(0, browser_guards(server))
    app.on_response_prepare.append(add_security_headers)
