"""HTTP sessions for subscription targets that connect only where the address policy allows.

The check sits in the connector, on the addresses it is about to connect to, not on the URL: a
name resolving to loopback, a name re-pointed after the subscription was created (DNS
rebinding) and every spelling of an address literal end up as the same list of addresses here.
aiohttp returns an address literal without asking the resolver, so wrapping the resolver alone
would miss ``http://127.0.0.1/``; this wraps the host resolution as a whole. Only the sessions
that reach subscription targets (webhooks, presets, Slack incoming webhooks) use it: the
operator's own base URLs (Clanforge, the Slack Web API) are not subject to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from notifier.core.address_policy import AddressPolicy, AddressRefused, host_address, url_host


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that refuses, before connecting, any address ``policy`` does not allow."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        # Odd spellings (2130706433, 127.1) are read as the C library would, whatever the
        # HTTP client makes of them.
        literal = host_address(host)
        if literal is not None:
            self._policy.check(literal)
        results = await super()._resolve_host(host, port, traces)
        # Every address, not just the first: the connection may fall back to any of them.
        for result in results:
            self._policy.check(ipaddress.ip_address(result["host"].split("%", 1)[0]))
        return results


def guarded_session(policy: AddressPolicy, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A session for subscription targets; environment proxies are ignored (``trust_env`` off),
    since a proxy would connect on our behalf past the check."""
    return aiohttp.ClientSession(
        connector=GuardedConnector(policy), timeout=timeout, trust_env=False
    )


def refusal_of(exc: BaseException) -> AddressRefused | None:
    """The policy's refusal behind an aiohttp connection error, if that is what it is."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        return exc.os_error
    seen = exc.__cause__
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__
    return None


async def resolve_problem(
    policy: AddressPolicy,
    url: str,
    *,
    resolver: AbstractResolver | None = None,
    timeout_seconds: float = 5.0,
) -> str | None:
    """Why ``url`` may not be a subscription target, checked when it is created: its host is an
    address the policy refuses, or a name that resolves to one. None when allowed, and when the
    name does not resolve now (the send-time guard decides then)."""
    problem = policy.url_problem(url)
    host = url_host(url)
    if problem is not None or not host or host_address(host) is not None:
        return problem
    resolver = resolver or ThreadedResolver()
    try:
        async with asyncio.timeout(timeout_seconds):
            results = await resolver.resolve(host, 0, socket.AF_UNSPEC)
    except (OSError, TimeoutError, UnicodeError):
        return None
    for result in results:
        problem = policy.problem(ipaddress.ip_address(result["host"].split("%", 1)[0]))
        if problem is not None:
            return f"{host} resolves to {problem}"
    return None
