"""The HTTP side of Clanforge: one request shape, every transport failure turned into UpstreamError.

The client owns no session: the service opens exactly one for Clanforge (:func:`open_clanforge`)
and shares it, so connection reuse and the per-host limit work across all watches. Interpreting
the reply is :func:`notifier.clanforge.reply.parse_status_reply`'s job, never this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from notifier.clanforge.options import ClanforgeOptions
from notifier.clanforge.reply import (
    parse_install_status_reply,
    parse_status_reply,
    reply_digest,
)
from notifier.core.status import FetchedStatus
from notifier.core.upstream_errors import BAD_REPLY, UNAVAILABLE, UpstreamError

MAX_BODY_BYTES: Final = 1024 * 1024
"""A status reply is a few hundred bytes; anything near this is not one, and is not read further."""

USER_AGENT: Final = "clanforge-notifier"


class ClanforgeClient:
    """Fetches image version status with one pair of Clanforge credentials.

    The credentials live only inside the prepared ``Authorization`` value; ``repr`` shows the base
    URL alone, and every error message is scrubbed of the keys in case upstream echoes them.
    """

    __slots__ = (
        "_authority",
        "_headers",
        "_max_body",
        "_prefix",
        "_root",
        "_scheme",
        "_secrets",
        "_session",
        "_timeout",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        access_key: str,
        secret_key: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        url = URL(base_url)
        if not url.absolute or url.scheme not in ("http", "https") or not url.host:
            raise ValueError("Clanforge base_url must be an absolute http(s) URL")
        if url.user is not None or url.password is not None:
            # Refused rather than stripped: a key in the URL would end up in logs sooner or later.
            raise ValueError("Clanforge base_url must not carry credentials; use the key settings")
        if url.query_string or url.fragment:
            raise ValueError("Clanforge base_url must not have a query or fragment")
        self._session = session
        self._root = str(url).rstrip("/")
        # The status URL is built from these already-encoded parts (see fetch_status).
        self._scheme = url.scheme
        self._authority = url.raw_authority
        self._prefix = url.raw_path.rstrip("/") + "/cfp/v1/imageversion/"
        headers = credential_headers(access_key, secret_key)
        authorization = headers["Authorization"]
        # Sent with each request unless the session already sends them all (one credential).
        self._headers: Final = (
            None if all(session.headers.get(k) == v for k, v in headers.items()) else headers
        )
        self._secrets: Final = tuple(
            s for s in (access_key, secret_key, authorization.removeprefix("Basic ")) if len(s) >= 4
        )
        self._timeout = timeout
        self._max_body = max_body_bytes

    def __repr__(self) -> str:
        return f"ClanforgeClient(base_url={self._root!r})"

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        """The current status of one image version; raises :class:`UpstreamError` on any failure.

        A successful reply whose digest is ``known_digest`` is not parsed (``status`` is None).
        """
        # Built from parts, already encoded, so no id can change the path or the query.
        url = URL.build(
            scheme=self._scheme,
            authority=self._authority,
            path=f"{self._prefix}{int(image_version_id)}/status",
            query_string=f"accountserviceid={int(account_service_id)}",
            encoded=True,
        )
        try:
            status, body, retry_after, location = await self._get(
                url, account_service_id, image_version_id
            )
            digest = reply_digest(body)
            if digest == known_digest and 200 <= status < 300:
                return FetchedStatus(digest, None)
            return FetchedStatus(
                digest,
                parse_status_reply(
                    status,
                    body,
                    account_service_id=account_service_id,
                    image_version_id=image_version_id,
                    retry_after=retry_after,
                    location=location,
                ),
            )
        except UpstreamError as exc:
            raise self._scrubbed(exc) from None

    async def fetch_install_targets(self, account_service_id: int) -> list[int]:
        """Image versions being installed under an account service (auto-discovery)."""
        url = f"{self._root}/cfp/v1/imageinstall/status?accountserviceid={int(account_service_id)}"
        try:
            status, body, retry_after, _ = await self._get(url, account_service_id, None)
            return parse_install_status_reply(
                status, body, account_service_id=account_service_id, retry_after=retry_after
            )
        except UpstreamError as exc:
            raise self._scrubbed(exc) from None

    async def _get(
        self, url: str | URL, account_service_id: int, image_version_id: int | None
    ) -> tuple[int, bytes, str | None, str | None]:
        """One GET: status, capped body, Retry-After and Location; transport failures raised.

        What the request was for is put into words only when it failed.
        """
        try:
            async with self._session.get(
                url,
                headers=self._headers,
                allow_redirects=False,
                timeout=self._timeout if self._timeout is not None else self._session.timeout,
            ) as response:
                declared = response.content_length
                if declared is not None and declared <= self._max_body:
                    # aiohttp stops at the declared length, so the cap holds without a loop.
                    body = await response.read()
                else:
                    body = await self._read_capped(
                        response, _subject(account_service_id, image_version_id)
                    )
                status = response.status
                if status < 300:
                    # Retry-After and Location mean something only for redirects and refusals.
                    return status, body, None, None
                retry_after = response.headers.get("Retry-After")
                location = response.headers.get("Location")
        except UpstreamError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._transport_error(
                exc, _subject(account_service_id, image_version_id)
            ) from None
        return status, body, retry_after, location

    def _transport_error(self, exc: Exception, subject: str) -> UpstreamError:
        """The one line to show for a request that got no usable HTTP answer."""
        if isinstance(exc, TimeoutError):
            # aiohttp's own timeouts (ServerTimeoutError and friends) are TimeoutErrors too.
            message = f"Clanforge did not answer within {self._timeout_text()} for {subject}"
        elif isinstance(exc, aiohttp.ClientPayloadError):
            message = f"Clanforge's reply for {subject} was cut short (truncated body)"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            message = (
                f"could not connect to Clanforge at {exc.host}:{exc.port} for {subject}: "
                f"{_os_error_text(exc)}"
            )
        elif isinstance(exc, aiohttp.ServerDisconnectedError):
            message = f"Clanforge closed the connection without answering for {subject}"
        elif isinstance(exc, aiohttp.ClientConnectionError):
            message = f"connection to Clanforge failed for {subject}: {_os_error_text(exc)}"
        else:
            # Malformed HTTP from upstream or a proxy (bad status line, oversized headers...).
            message = f"Clanforge's reply for {subject} was not valid HTTP ({type(exc).__name__})"
        return UpstreamError(UNAVAILABLE, message)

    async def _read_capped(self, response: aiohttp.ClientResponse, subject: str) -> bytes:
        """A body of unknown length, read in chunks up to the cap (or one declared too large)."""
        if response.content_length is not None:
            raise self._too_large(response.status, subject)
        chunks: list[bytes] = []
        size = 0
        while size <= self._max_body:
            chunk = await response.content.read(self._max_body + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > self._max_body:
            raise self._too_large(response.status, subject)
        return b"".join(chunks)

    def _too_large(self, status: int, subject: str) -> UpstreamError:
        return UpstreamError(
            BAD_REPLY,
            f"Clanforge answered {status} for {subject} with a body larger than "
            f"{self._max_body} bytes, which is not a status reply",
            status=status,
        )

    def _timeout_text(self) -> str:
        timeout = self._timeout if self._timeout is not None else self._session.timeout
        limits = [
            f"{name} {value:g} s"
            for name, value in (
                ("total", timeout.total),
                ("connect", timeout.connect),
                ("read", timeout.sock_read),
            )
            if value is not None
        ]
        return f"the timeout ({', '.join(limits)})" if limits else "the timeout"

    def _scrubbed(self, exc: UpstreamError) -> UpstreamError:
        message = exc.message
        for secret in self._secrets:
            message = message.replace(secret, "***")
        if message == exc.message:
            return exc
        return UpstreamError(exc.reason, message, status=exc.status, retry_after=exc.retry_after)


def _subject(account_service_id: int, image_version_id: int | None) -> str:
    """What a request was for, in an error message: a status, or the install list."""
    if image_version_id is None:
        return f"image installs of account service {account_service_id}"
    return f"image version {image_version_id} (account service {account_service_id})"


def _os_error_text(exc: aiohttp.ClientError) -> str:
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return str(exc.strerror)
    if cause is not None and cause.strerror:
        return cause.strerror
    return type(exc).__name__


def client_timeout(options: ClanforgeOptions) -> aiohttp.ClientTimeout:
    """The explicit timeout for Clanforge requests: aiohttp's default (300 s total) is far too long.

    ``connect`` covers waiting for a pooled connection as well as the TCP/TLS handshake; callers
    are expected to bound their own concurrency to ``max_concurrency`` so that wait stays short.
    """
    seconds = options.timeout_seconds
    return aiohttp.ClientTimeout(total=seconds, connect=seconds, sock_read=seconds)


def credential_headers(access_key: str, secret_key: str) -> CIMultiDict[str]:
    """What every request made with one credential pair carries.

    Built once as aiohttp's own header type, which it then merges without converting.
    """
    return CIMultiDict(
        {
            "Authorization": aiohttp.encode_basic_auth(access_key, secret_key),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
    )


@contextlib.asynccontextmanager
async def clanforge_session(options: ClanforgeOptions) -> AsyncIterator[aiohttp.ClientSession]:
    """The one Clanforge session of the process, shared by every credential's client.

    With a single credential pair (the usual deployment) the session sends its headers itself:
    aiohttp merges per-request headers into the session's on every request.
    """
    headers = CIMultiDict({"User-Agent": USER_AGENT})
    if len(options.credentials) == 1:
        only = options.credentials[0]
        headers.extend(credential_headers(only.access_key, only.secret_key))
    connector = aiohttp.TCPConnector(
        limit=options.max_concurrency, limit_per_host=options.max_concurrency
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout(options),
        headers=headers,
        cookie_jar=aiohttp.DummyCookieJar(),  # a status API has no business setting cookies
    )
    try:
        yield session
    finally:
        await session.close()
        # Let the connector's transports finish closing before the loop may be torn down.
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def open_clanforge(options: ClanforgeOptions) -> AsyncIterator[ClanforgeClient]:
    """The Clanforge session and a client with the first credential pair on it, closed on exit."""
    credential = options.credentials[0]
    async with clanforge_session(options) as session:
        yield ClanforgeClient(
            session, options.base_url, credential.access_key, credential.secret_key
        )
