"""A Clanforge stand-in on 127.0.0.1 that answers the image version status endpoint from memory.

It speaks the real wire format, quirks included (``jobstart`` as a string, state 5 named
"Completed", Basic credentials, JSON error bodies), so the code under test cannot tell it from
upstream. Replies are scripted per (account service, image version) and encoded to bytes when
scripted, because the benchmarks send it tens of thousands of requests.

Usage::

    async with FakeClanforge(access_key="ak", secret_key="sk") as fake:
        fake.script(1234, 567890, [status_reply(3), status_reply(4, 50), status_reply(5, 100)])
        ...  # point the client at fake.base_url
        assert fake.polls(1234, 567890) == 3
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import aiohttp
from aiohttp import web

from notifier.testing.loopback_server import LoopbackServer

JSON_HEADERS: Final = {"Content-Type": "application/json; charset=utf-8"}

# What upstream calls each state: the seed page says "Completed" for 5, not "Complete".
UPSTREAM_STATE_NAMES: Final[dict[int, str]] = {
    1: "Created",
    2: "Pending",
    3: "Queued",
    4: "Running",
    5: "Completed",
    6: "Failed",
    7: "Squashed",
}


_STARTED_STATES: Final = frozenset({4, 5, 6, 7})


def _unix(moment: int | datetime | None) -> int | None:
    if isinstance(moment, datetime):
        return int(moment.timestamp())
    return moment


class _Auto:
    """Default marker for :func:`status_reply` times: "what upstream would plausibly send"."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()


def status_reply(
    state_id: int | None,
    progress: int = 0,
    *,
    eta: int | datetime | None = None,
    error: str | None = None,
    failed: int = 0,
    state_name: str | None = None,
    start: int | datetime | str | _Auto | None = AUTO,
    created: int | datetime | _Auto | None = AUTO,
    updated: int | datetime | _Auto | None = AUTO,
    image_version_id: int | None = None,
) -> dict[str, object]:
    """The JSON object upstream sends for a successful status request, field for field.

    Times are Unix seconds or aware datetimes. By default ``created`` and ``updated`` are now,
    ``start`` is now as a *string* once the job has left the queue and ``""`` before; ``eta`` None
    is sent as 0 and ``error`` None as ``""``, the shapes a client must cope with.
    ``imageversionid`` is filled in by :meth:`FakeClanforge.script` unless given here.
    """
    now = int(time.time())
    if isinstance(start, _Auto):
        start = str(now) if state_id in _STARTED_STATES else ""
    elif isinstance(start, (int, datetime)):
        start = str(_unix(start))
    reply: dict[str, object] = {}
    if image_version_id is not None:
        reply["imageversionid"] = image_version_id
    reply.update(
        {
            "jobcreated": now if isinstance(created, _Auto) else _unix(created),
            "joberror": error if error is not None else "",
            "jobeta": _unix(eta) or 0,
            "jobfailed": failed,
            "jobprogress": progress,
            "jobstart": start,
            "jobstateid": state_id,
            "jobstatename": state_name
            if state_name is not None
            else UPSTREAM_STATE_NAMES.get(state_id or 0, "Unknown"),
            "jobupdated": now if isinstance(updated, _Auto) else _unix(updated),
            "success": True,
        }
    )
    return reply


@dataclass(frozen=True, slots=True)
class FakeReply:
    """A scripted reply other than a plain status: an error, a slow answer or a broken transport.

    ``delay`` sleeps before answering (to trip client timeouts); ``truncate`` sends the headers
    and half the body, then closes the connection; ``disconnect`` closes it without answering.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False
    disconnect: bool = False

    @classmethod
    def json(
        cls, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> FakeReply:
        return cls(status, json.dumps(payload).encode(), {**JSON_HEADERS, **(headers or {})})

    @classmethod
    def html(cls, status: int, title: str = "Bad Gateway") -> FakeReply:
        page = (
            f"<html><head><title>{status} {title}</title></head>"
            f"<body><h1>{title}</h1></body></html>"
        )
        return cls(status, page.encode(), {"Content-Type": "text/html"})


Step = Mapping[str, object] | FakeReply


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received; ``time`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    time: float
    header_names: tuple[str, ...] = ()
    """Every header line's name in the order sent, repeats included (``headers`` folds them)."""


def _recorded(request: web.Request) -> RecordedRequest:
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=dict(request.headers),
        time=time.monotonic(),
        header_names=tuple(request.headers.keys()),
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    status: int
    body: bytes
    headers: Mapping[str, str]
    delay: float = 0.0
    truncate: bool = False
    disconnect: bool = False


class _Script:
    __slots__ = ("position", "steps")

    def __init__(self, steps: Sequence[_Prepared]) -> None:
        self.steps = steps
        self.position = 0

    def next(self) -> _Prepared:
        step = self.steps[self.position]
        if self.position < len(self.steps) - 1:
            self.position += 1
        return step


def _error_body(status: int, message: str) -> bytes:
    return json.dumps({"success": False, "error": message, "code": status}).encode()


_UNAUTHORIZED: Final = _Prepared(
    401,
    _error_body(401, "Invalid credentials"),
    {**JSON_HEADERS, "WWW-Authenticate": 'Basic realm="Clanforge"'},
)


class FakeClanforge(LoopbackServer):
    """A real HTTP server on 127.0.0.1 answering ``GET /cfp/v1/imageversion/{id}/status``.

    Unknown (account service, image version) pairs get 404 with a JSON error body, wrong or
    missing Basic credentials 401, a missing or non-numeric ``accountserviceid`` 400. Every
    request is counted per pair (:meth:`polls`) and, unless ``record=False``, kept in
    :attr:`requests`.
    """

    def __init__(
        self,
        *,
        access_key: str = "ak",
        secret_key: str = "sk",  # noqa: S107 - a fake's well-known test credentials
        path_prefix: str = "",
        record: bool = True,
        rate_limit: int | None = None,
        retry_after: str | None = "1",
    ) -> None:
        """``rate_limit``: answer 429 (with ``Retry-After: retry_after`` unless None) to any
        request past that many per second and credential, as Clanforge does."""
        super().__init__()
        self._authorization = aiohttp.encode_basic_auth(access_key, secret_key)
        # Authorization value -> the account services it may see (None: all of them).
        self._credentials: dict[str, frozenset[int] | None] = {self._authorization: None}
        self._rate_limit = rate_limit
        self._retry_after = retry_after
        self._accepted: dict[str, deque[float]] = {}
        self._installs: dict[int, Step] = {}
        self.limited_at: list[float] = []
        """``time.monotonic()`` of every 429 the rate limit sent."""
        self._prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self._record = record
        self._scripts: dict[tuple[int, int], _Script] = {}
        self._polls: dict[tuple[int, int], int] = {}
        self.requests: list[RecordedRequest] = []

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}{self._prefix}"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                self._prefix + r"/cfp/v1/imageversion/{ivid:\d+}/status",
                self._handle_status,
                allow_head=False,
            ),
            web.get(
                self._prefix + "/cfp/v1/imageinstall/status",
                self._handle_installs,
                allow_head=False,
            ),
        ]

    def runner_options(self) -> dict[str, Any]:
        # A delayed step must not hold up shutdown once the client gave up.
        return {"handler_cancellation": True, "shutdown_timeout": 0.5}

    # --- scripting -------------------------------------------------------------------------------

    def script(self, account_service_id: int, image_version_id: int, steps: Iterable[Step]) -> None:
        """Answer the next requests for this pair with ``steps`` in order; the last one repeats."""
        prepared = [self._prepare(step, image_version_id) for step in steps]
        if not prepared:
            raise ValueError("a script needs at least one step")
        self._scripts[(account_service_id, image_version_id)] = _Script(prepared)

    def set_status(self, account_service_id: int, image_version_id: int, reply: Step) -> None:
        """Answer every request for this pair with ``reply`` from now on."""
        self.script(account_service_id, image_version_id, [reply])

    def forget(self, account_service_id: int, image_version_id: int) -> None:
        """Make the pair unknown again (404), as if the image version had been deleted."""
        self._scripts.pop((account_service_id, image_version_id), None)

    def add_credentials(
        self, access_key: str, secret_key: str, account_service_ids: Iterable[int]
    ) -> None:
        """Accept another key pair, for these account services only (403 for any other)."""
        authorization = aiohttp.encode_basic_auth(access_key, secret_key)
        self._credentials[authorization] = frozenset(account_service_ids)

    def set_installs(self, account_service_id: int, installs: Sequence[int] | FakeReply) -> None:
        """Answer the install-status endpoint for this account service: one incomplete install
        per machine, so each image version is listed twice, as on a fleet of two machines."""
        if isinstance(installs, FakeReply):
            self._installs[account_service_id] = installs
            return
        entries = [
            {
                "jobid": 1000 + i,
                "jobstateid": 4,
                "jobstatename": "Running",
                "jobprogress": 10,
                "machine": f"machine-{i % 2}",
                "location": "eu-west",
                "target_imageversionid": ivid,
            }
            for i, ivid in enumerate(ivid for ivid in installs for _ in range(2))
        ]
        self._installs[account_service_id] = {"installs": entries}

    def polls(self, account_service_id: int, image_version_id: int) -> int:
        """How many requests named this pair, whatever they were answered."""
        return self._polls.get((account_service_id, image_version_id), 0)

    @staticmethod
    def _prepare(step: Step, image_version_id: int) -> _Prepared:
        if isinstance(step, FakeReply):
            return _Prepared(
                step.status,
                step.body,
                dict(step.headers),
                step.delay,
                step.truncate,
                step.disconnect,
            )
        payload = dict(step)
        if payload.get("imageversionid") is None:
            payload["imageversionid"] = image_version_id
        # Upstream's key order, so the bytes look like the real thing.
        ordered = {key: payload[key] for key in sorted(payload)}
        return _Prepared(200, json.dumps(ordered).encode(), JSON_HEADERS)

    # --- serving ---------------------------------------------------------------------------------

    async def _handle_status(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        asid_text = query.get("accountserviceid", "")
        image_version_id = int(request.match_info["ivid"])
        if self._record:
            self.requests.append(_recorded(request))
        if not asid_text.isdigit():
            return self._send(
                _Prepared(400, _error_body(400, "accountserviceid is required"), JSON_HEADERS)
            )
        key = (int(asid_text), image_version_id)
        self._polls[key] = self._polls.get(key, 0) + 1
        refused = self._gate(request, key[0])
        if refused is not None:
            return self._send(refused)
        script = self._scripts.get(key)
        if script is None:
            return self._send(
                _Prepared(
                    404,
                    _error_body(404, f"Image version {image_version_id} not found"),
                    JSON_HEADERS,
                )
            )
        step = script.next()
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.disconnect:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if step.truncate:
            response = web.StreamResponse(status=step.status, headers=step.headers)
            response.content_length = len(step.body) + 64
            await response.prepare(request)
            await response.write(step.body[: len(step.body) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        return self._send(step)

    async def _handle_installs(self, request: web.Request) -> web.StreamResponse:
        asid_text = request.query.get("accountserviceid", "")
        if self._record:
            self.requests.append(_recorded(request))
        if not asid_text.isdigit():
            return self._send(
                _Prepared(400, _error_body(400, "accountserviceid is required"), JSON_HEADERS)
            )
        refused = self._gate(request, int(asid_text))
        if refused is not None:
            return self._send(refused)
        step = self._installs.get(int(asid_text), {"installs": []})
        if isinstance(step, FakeReply):
            return self._send(_Prepared(step.status, step.body, dict(step.headers)))
        return self._send(_Prepared(200, json.dumps(step).encode(), JSON_HEADERS))

    def _gate(self, request: web.Request, account_service_id: int) -> _Prepared | None:
        """401 for unknown keys, 403 for an account service they may not see, 429 past the
        rate limit; None when the request may be answered."""
        authorization = request.headers.get("Authorization", "")
        if authorization not in self._credentials:
            return _UNAUTHORIZED
        allowed = self._credentials[authorization]
        if allowed is not None and account_service_id not in allowed:
            return _Prepared(
                403,
                _error_body(403, f"Access denied to account service {account_service_id}"),
                JSON_HEADERS,
            )
        if self._rate_limit is not None:
            now = time.monotonic()
            window = self._accepted.setdefault(authorization, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self._rate_limit:
                self.limited_at.append(now)
                headers = dict(JSON_HEADERS)
                if self._retry_after is not None:
                    headers["Retry-After"] = self._retry_after
                return _Prepared(429, _error_body(429, "Too many requests"), headers)
            window.append(now)
        return None

    @staticmethod
    def _send(step: _Prepared) -> web.Response:
        return web.Response(status=step.status, body=step.body, headers=step.headers)
