"""SSRF: a subscription target cannot make the service reach this machine or its network.

Each case plays the attacker (an API caller, a Slack member, a careless config) and asserts what
they get: no connection to the address they named, and an error that says only which rule
refused it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.cli import main
from notifier.core.address_policy import AddressPolicy, host_address
from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.subscriptions import WebhookSubscription
from notifier.notify.guarded_http import GuardedConnector, guarded_session, resolve_problem
from notifier.notify.samples import sample_event
from notifier.notify.webhook import WebhookSink
from notifier.store.subscriptions import list_subscriptions
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.api import make_settings, running_api

NO_PRIVATE = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy.of(["127.0.0.0/8", "::1/128"])

# URL form -> what the refusal names. Thirty-one spellings of "not the public internet".
REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.9.9.9:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/hook", "loopback"),
    ("http://localhost:9/hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://LOCALHOST./hook", "loopback"),
    ("http://0.0.0.0:9/hook", "unspecified"),
    ("https://[::]:9/", "unspecified"),
    ("https://[::ffff:127.0.0.1]:9/", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped"),
    ("https://0x7f000001:9/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://[fd12:3456::1]/", "unique local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://[64:ff9b::7f00:1]/", "NAT64"),
    ("http://[2002:7f00:1::1]/", "6to4"),
]
PUBLIC = [
    "https://93.184.215.14/hook",
    "https://8.8.8.8/",
    "https://[2606:4700:4700::1111]/",
    "https://[::ffff:8.8.8.8]/",
    "https://chatops.example.com/hook",  # a name: judged on what it resolves to, when sending
]


@pytest.mark.parametrize(("url", "rule"), REFUSED)
def test_every_spelling_of_a_non_public_address_is_refused_naming_the_rule_and_the_key(
    url: str, rule: str
) -> None:
    problem = NO_PRIVATE.url_problem(url)
    assert problem is not None
    assert rule in problem
    assert "[network] allow_private" in problem


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_pass(url: str) -> None:
    assert NO_PRIVATE.url_problem(url) is None


def test_allow_private_opens_exactly_the_networks_listed() -> None:
    studio = AddressPolicy.of(["10.20.0.0/16", "fd00::/8"])
    assert studio.url_problem("http://10.20.3.4/") is None
    assert studio.url_problem("http://[::ffff:10.20.3.4]/") is None
    assert studio.url_problem("http://[fd00::5]/") is None
    assert studio.url_problem("http://10.21.0.1/") is not None
    assert studio.url_problem("http://127.0.0.1/") is not None
    assert studio.url_problem("http://169.254.169.254/") is not None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("chatops.example.com", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
    ],
)
def test_address_literals_are_read_as_the_c_library_reads_them(
    host: str, address: str | None
) -> None:
    found = host_address(host)
    assert (None if found is None else str(found)) == address
    if address is not None and ":" not in host:
        # The same reading as the C library's, which is what a connect would have used.
        assert str(ipaddress.IPv4Address(socket.inet_aton(host))) == address


class ConnectionCounter:
    """A TCP listener on loopback that only counts who connected: any count above zero is a
    request the attacker got the service to make."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def counter() -> AsyncIterator[ConnectionCounter]:
    listening = ConnectionCounter()
    await listening.start()
    yield listening
    await listening.close()


class MapResolver(AbstractResolver):
    """A resolver for names the attacker controls: each lookup takes the next answer."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self._answers = answers
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        queue = self._answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return


def _hook(url: str) -> WebhookSubscription:
    return WebhookSubscription(id=1, name="attacker", url=url)


async def _send(session: aiohttp.ClientSession, url: str) -> DeliveryFailed:
    with pytest.raises(DeliveryFailed) as failed:
        await WebhookSink(session, timeout_seconds=2).send(sample_event(), _hook(url))
    return failed.value


LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/hook",
    "https://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "https://[::ffff:127.0.0.1]:{port}/hook",
    "http://2130706433:{port}/hook",
    "https://0x7f000001:{port}/hook",
    "http://0177.0.0.1:{port}/hook",
    "http://127.1:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "https://0.0.0.0:{port}/hook",
]


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
async def test_a_webhook_to_loopback_in_any_form_gets_no_connection_and_dies_for_good(
    counter: ConnectionCounter, form: str
) -> None:
    timeout = aiohttp.ClientTimeout(total=2)
    async with guarded_session(NO_PRIVATE, timeout) as session:
        failure = await _send(session, form.format(port=counter.port))
    assert counter.connections == 0
    assert failure.permanent  # dead at once, never retried
    assert "[network] allow_private" in failure.reason


async def test_a_name_resolving_to_loopback_gets_no_connection(counter: ConnectionCounter) -> None:
    resolver = MapResolver({"hooks.attacker.test": ["127.0.0.1"]})
    connector = GuardedConnector(NO_PRIVATE, resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        failure = await _send(session, f"http://hooks.attacker.test:{counter.port}/hook")
    assert resolver.lookups == 1
    assert counter.connections == 0
    assert failure.permanent
    assert "loopback" in failure.reason


async def test_dns_rebinding_after_a_good_answer_gets_no_connection() -> None:
    # 127.0.0.2 stands for the receiver's allowed network; the name then re-points to 127.0.0.1.
    policy = AddressPolicy.of(["127.0.0.2/32"])
    async with WebhookReceiver(host="127.0.0.2") as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        resolver = MapResolver({"hooks.rebind.test": ["127.0.0.2", "127.0.0.1"]})
        connector = GuardedConnector(
            policy, resolver=resolver, use_dns_cache=False, force_close=True
        )
        url = f"http://hooks.rebind.test:{port}/hook"
        async with aiohttp.ClientSession(connector=connector) as session:
            sink = WebhookSink(session, timeout_seconds=2)
            assert 200 <= await sink.send(sample_event(), _hook(url)) < 300
            failure = await _send(session, url)
        assert len(receiver.requests) == 1
    assert failure.permanent
    assert "127.0.0.1" in failure.reason


async def test_allow_private_lets_a_studio_receiver_through() -> None:
    async with (
        WebhookReceiver() as receiver,
        guarded_session(LOOPBACK_ALLOWED, aiohttp.ClientTimeout(total=2)) as session,
    ):
        status = await WebhookSink(session, timeout_seconds=2).send(
            sample_event(), _hook(receiver.url)
        )
        assert 200 <= status < 300
        assert len(receiver.requests) == 1


@asynccontextmanager
async def _listener(handler: object) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_errors_do_not_tell_an_open_port_from_a_closed_one() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    reasons: list[str] = []
    async with guarded_session(LOOPBACK_ALLOWED, aiohttp.ClientTimeout(total=2)) as session:
        closed = _free_port()
        reasons.append((await _send(session, f"http://127.0.0.1:{closed}/")).reason)
        for handler in (hang_up, reset):
            async with _listener(handler) as port:
                failure = await _send(session, f"http://127.0.0.1:{port}/")
                reasons.append(failure.reason.replace(str(port), "PORT"))
        reasons[0] = reasons[0].replace(str(closed), "PORT")
    assert len(set(reasons)) == 1, reasons


async def test_a_redirect_to_loopback_is_not_followed(counter: ConnectionCounter) -> None:
    async with (
        WebhookReceiver() as receiver,
        guarded_session(LOOPBACK_ALLOWED, aiohttp.ClientTimeout(total=2)) as session,
    ):
        receiver.respond_next(307, headers={"Location": f"http://127.0.0.1:{counter.port}/"})
        failure = await _send(session, receiver.url)
    assert failure.permanent
    assert counter.connections == 0


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0x7f000001/hook",
        "https://169.254.169.254/latest",
        "https://10.0.0.1/hook",
        "https://localhost/hook",
    ],
)
async def test_the_api_refuses_a_non_public_webhook_with_422_and_stores_nothing(
    engine: AsyncEngine, target: str
) -> None:
    async with running_api(engine) as api:
        status, body = await api.call(
            "POST",
            "/api/v1/subscriptions",
            json={"name": "x", "kind": "webhook", "target": target},
        )
        assert status == 422
        assert "allow_private" in body["error"]["message"]
        assert await list_subscriptions(engine) == []


async def test_the_api_accepts_a_private_receiver_the_operator_allowed(engine: AsyncEngine) -> None:
    settings = make_settings(network={"allow_private": ["10.0.0.0/8"]})
    async with running_api(engine, settings) as api:
        status, _ = await api.call(
            "POST",
            "/api/v1/subscriptions",
            json={"name": "x", "kind": "webhook", "target": "https://10.1.2.3/hook"},
        )
    assert status == 201


async def test_resolution_at_creation_catches_a_name_pointing_at_loopback() -> None:
    resolver = MapResolver({"hooks.attacker.test": ["10.0.0.7"]})
    problem = await resolve_problem(
        NO_PRIVATE, "https://hooks.attacker.test/hook", resolver=resolver
    )
    assert problem is not None
    assert problem.startswith("hooks.attacker.test resolves to address 10.0.0.7 is a private")


@pytest.fixture
def loopback_config(tmp_path: Path) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(
        '[clanforge]\naccess_key = "a"\nsecret_key = "s"\n\n'
        '[[subscription]]\nname = "x"\nwebhook_url = "https://[::ffff:7f00:1]:9/hook"\n',
        encoding="utf-8",
    )
    return path


def test_check_config_refuses_a_loopback_target_with_exit_2_and_one_line(
    loopback_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(loopback_config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "subscription[0].webhook_url" in err
    assert "[network] allow_private" in err
