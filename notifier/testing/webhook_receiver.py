"""A local webhook endpoint that records what arrives and answers as scripted.

Tests assert on the exact bytes and headers a receiver sees, and verify signatures with the
reference ``standardwebhooks`` implementation, the way a real chatops receiver would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import standardwebhooks
from aiohttp import web

from notifier.testing.loopback_server import LoopbackServer


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes
    json: Any
    """The parsed body, or None when it was not JSON."""
    at: float
    """``time.monotonic()`` at arrival."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    stream_bytes: int = 0
    chunk_delay: float = 0.0
    chunk_bytes: int = 65536


class WebhookReceiver(LoopbackServer):
    """``async with WebhookReceiver() as receiver:`` then send to ``receiver.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/hook") -> None:
        super().__init__(host, port)
        self.requests: list[ReceivedRequest] = []
        self.streamed_bytes = 0
        """Body bytes written by streamed answers before the sender hung up or we finished."""
        self._answers: deque[_Answer] = deque()
        self._path = path
        # Set at close so that a scripted slow answer does not hold up the server's shutdown.
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{self.origin}{self._path}"

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/{tail:.*}", self._handle)]

    async def close(self) -> None:
        self._closing.set()
        await super().close()

    def respond_next(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        delay: float = 0.0,
        stream_bytes: int = 0,
        chunk_delay: float = 0.0,
        chunk_bytes: int = 65536,
    ) -> None:
        """Queue one answer; requests beyond the queue get 204 No Content.

        ``delay`` holds the answer back (until close at the latest: a huge delay never answers).
        ``stream_bytes`` streams a body of that many bytes in ``chunk_bytes`` chunks instead of
        ``body``, ``chunk_delay`` apart, stopping when the sender hangs up: a huge or trickling
        body.
        """
        self._answers.append(
            _Answer(
                status, dict(headers or {}), body, delay, stream_bytes, chunk_delay, chunk_bytes
            )
        )

    def verified_payloads(self, secret: str) -> list[Any]:
        """Bodies whose Standard Webhooks signature checks out for ``secret``, in arrival order."""
        verifier = standardwebhooks.Webhook(secret)
        verified = []
        for request in self.requests:
            try:
                verified.append(verifier.verify(request.body, request.headers))
            except standardwebhooks.WebhookVerificationError:
                continue
        return verified

    async def _stream(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_length = answer.stream_bytes
        chunk = b"x" * answer.chunk_bytes
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            while self.streamed_bytes < answer.stream_bytes and not self._closing.is_set():
                part = chunk[: answer.stream_bytes - self.streamed_bytes]
                await response.write(part)
                self.streamed_bytes += len(part)
                if answer.chunk_delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), answer.chunk_delay)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.path,
                headers={name.lower(): value for name, value in request.headers.items()},
                body=body,
                json=parsed,
                at=time.monotonic(),
            )
        )
        answer = self._answers.popleft() if self._answers else _Answer(204)
        if answer.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), answer.delay)
        if answer.stream_bytes:
            return await self._stream(request, answer)
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)
