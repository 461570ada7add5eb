"""Which network addresses a subscription target may reach: public unicast, or an allowed CIDR.

Anyone who can create a subscription (the REST API, a Slack workspace member, the configuration)
chooses where the service sends requests. Without this rule that is a request forgery into the
service's own network: the cloud metadata endpoint, a database's HTTP port, the admin API itself.
GitLab's "allow requests to the local network from webhooks" is the model: refused by default,
opened per network by the operator (``[network] allow_private``).

The rule is applied to addresses, never to names: the HTTP guard applies it to every address a
name resolves to, right before connecting, so a name pointing at loopback or re-pointed between
check and use (DNS rebinding) is refused like the literal address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_KEY: Final = "[network] allow_private"

# Ranges the ipaddress flags do not cover in every Python version, or that are private in
# practice without being flagged (CGNAT, benchmarking, 6to4/Teredo/NAT64 wrapping any IPv4).
_EXTRA_REFUSED: Final[tuple[tuple[str, str], ...]] = (
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("198.18.0.0/15", "benchmarking"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("64:ff9b::/96", "NAT64, which can reach any IPv4 address"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("2002::/16", "6to4, which can reach any IPv4 address"),
    ("2001::/32", "Teredo, which can reach any IPv4 address"),
)
_EXTRA_NETWORKS: Final = tuple((ipaddress.ip_network(n), why) for n, why in _EXTRA_REFUSED)


class AddressRefused(OSError):
    """A subscription target's address is outside what it may reach.

    An :class:`OSError` so that the HTTP client carries it through its connection errors
    unchanged; the sink recognises it and fails the delivery for good.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not public unicast, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            inner = refusal_reason(mapped)
            return None if inner is None else f"{inner} (written as IPv4-mapped IPv6)"
        if address.sixtofour is not None or address.teredo is not None:
            return "a tunnelling address (6to4 or Teredo) that can reach any IPv4 address"
    if address.is_unspecified:
        return "the unspecified address (it means this machine)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    for network, why in _EXTRA_NETWORKS:
        if address.version == network.version and address in network:
            return f"in {network} ({why})"
    if address == _BROADCAST:
        return "the broadcast address"
    if address.is_reserved:
        return "a reserved address"
    if isinstance(address, ipaddress.IPv6Address) and address in _ULA:
        return "a unique local IPv6 address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


_ULA: Final = ipaddress.ip_network("fc00::/7")
_BROADCAST: Final = ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses, plus whatever lies inside ``allow_private``."""

    allow_private: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> AddressPolicy:
        """From CIDR strings (``"10.0.0.0/8"``, ``"::1/128"``, or a bare address)."""
        return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs))

    def allowed(self, address: IPAddress) -> bool:
        return self.problem(address) is None

    def problem(self, address: IPAddress) -> str | None:
        """One line saying which rule refuses ``address`` and what to change; None if allowed."""
        if any(_within(address, net) for net in self.allow_private):
            return None
        reason = refusal_reason(address)
        if reason is None:
            return None
        shown = _unmapped(address)
        return (
            f"address {shown} is {reason}: subscription targets may only reach public "
            f"addresses unless {ALLOW_KEY} lists a network containing it"
        )

    def check(self, address: IPAddress) -> None:
        """Raise :class:`AddressRefused` unless ``address`` is allowed."""
        problem = self.problem(address)
        if problem is not None:
            raise AddressRefused(problem)

    def url_problem(self, url: str) -> str | None:
        """The problem with ``url``'s host when it is an address in any spelling (names are
        checked once resolved); None when it is allowed or a name."""
        host = url_host(url)
        address = host_address(host)
        if address is None and _is_localhost(host):
            address = ipaddress.IPv4Address("127.0.0.1")
        return None if address is None else self.problem(address)


def _within(address: IPAddress, network: IPNetwork) -> bool:
    if address.version == network.version:
        return address in network
    unmapped = _unmapped(address)
    return unmapped.version == network.version and unmapped in network


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_localhost(host: str) -> bool:
    """``localhost`` and its subdomains always mean this machine (RFC 6761)."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def url_host(url: str) -> str:
    """The host of ``url`` as written (no brackets), or "" when there is none."""
    try:
        return urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""


def host_address(host: str) -> IPAddress | None:
    """The address ``host`` denotes when it is an address in any spelling the C library accepts
    (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``); None
    for a name."""
    host = host.strip().strip("[]").rstrip(".")
    if not host:
        return None
    host = host.split("%", 1)[0]  # an IPv6 zone id names an interface, not another address
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _inet_aton(host)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """``inet_aton``'s reading: one to four parts, each decimal, octal (leading 0) or hex (0x);
    the last part fills the remaining bytes."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _number(part)
        if value is None:
            return None
        values.append(value)
    *leading, last = values
    if any(v > 0xFF for v in leading):
        return None
    if last >= 1 << (8 * (4 - len(leading))):
        return None
    number = 0
    for v in leading:
        number = number << 8 | v
    number = number << (8 * (4 - len(leading))) | last
    return ipaddress.IPv4Address(number)


def _number(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:] or "0", 16)
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        if lowered.isascii() and lowered.isdigit():
            return int(lowered)
    except ValueError:
        return None
    return None
