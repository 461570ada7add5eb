"""The Clanforge client over real sockets: FakeClanforge, and a few deliberately bad servers."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from notifier.clanforge.client import ClanforgeClient, open_clanforge
from notifier.clanforge.options import ClanforgeOptions, Credential
from notifier.clanforge.reply import MAX_RETRY_AFTER
from notifier.core.clock import utc_now
from notifier.core.status import FetchedStatus
from notifier.core.upstream_errors import (
    BAD_REPLY,
    CREDENTIALS_REJECTED,
    NOT_FOUND,
    RATE_LIMITED,
    UNAVAILABLE,
    UpstreamError,
)
from notifier.testing.fake_clanforge import JSON_HEADERS, FakeClanforge, FakeReply, status_reply
from tests.support.narrow import parsed

ASID = 1234
IVID = 567890
ACCESS_KEY = "AK-test-access-7f3a"
SECRET_KEY = "SK-test-secret-9c1e"
START = 1764349445


@pytest.fixture
async def fake() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeClanforge, session: aiohttp.ClientSession) -> ClanforgeClient:
    return ClanforgeClient(session, fake.base_url, ACCESS_KEY, SECRET_KEY)


def quick_client(session: aiohttp.ClientSession, base_url: str) -> ClanforgeClient:
    return ClanforgeClient(
        session,
        base_url,
        ACCESS_KEY,
        SECRET_KEY,
        timeout=aiohttp.ClientTimeout(total=0.3, sock_read=0.2),
    )


async def fetch_error(client: ClanforgeClient, asid: int = ASID, ivid: int = IVID) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await client.fetch_status(asid, ivid)
    assert ACCESS_KEY not in caught.value.message
    assert SECRET_KEY not in caught.value.message
    return caught.value


async def test_sends_documented_path_query_and_headers(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.set_status(ASID, IVID, status_reply(4, 40, start=START))

    status = parsed(await client.fetch_status(ASID, IVID))

    assert (status.state_id, status.state, status.progress) == (4, "Running", 40)
    assert status.started == datetime.fromtimestamp(START, UTC)
    [request] = fake.requests
    assert request.method == "GET"
    assert request.path == f"/cfp/v1/imageversion/{IVID}/status"
    assert request.query == {"accountserviceid": str(ASID)}
    expected = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"


@pytest.mark.parametrize("suffix", ["", "/"], ids=["no-trailing-slash", "trailing-slash"])
async def test_base_url_with_path_prefix_is_joined_without_losing_the_prefix(
    session: aiohttp.ClientSession, suffix: str
) -> None:
    async with FakeClanforge(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, path_prefix="/prefix"
    ) as prefixed:
        prefixed.set_status(ASID, IVID, status_reply(3))
        client = ClanforgeClient(session, prefixed.base_url + suffix, ACCESS_KEY, SECRET_KEY)

        status = parsed(await client.fetch_status(ASID, IVID))

    assert status.state == "Queued"
    assert prefixed.requests[0].path == f"/prefix/cfp/v1/imageversion/{IVID}/status"


async def test_scripted_steps_are_served_in_order_and_the_last_repeats(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.script(ASID, IVID, [status_reply(3), status_reply(4, 50), status_reply(5, 100)])

    seen = [parsed(await client.fetch_status(ASID, IVID)).state for _ in range(4)]

    assert seen == ["Queued", "Running", "Complete", "Complete"]
    assert fake.polls(ASID, IVID) == 4
    assert fake.polls(ASID, IVID + 1) == 0


async def test_wrong_credentials_are_credentials_rejected(
    fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    fake.set_status(ASID, IVID, status_reply(4))
    client = ClanforgeClient(session, fake.base_url, ACCESS_KEY, "SK-wrong-secret-0000")

    error = await fetch_error(client)

    assert error.reason == CREDENTIALS_REJECTED
    assert error.status == 401
    assert "Invalid credentials" in error.message
    assert "SK-wrong-secret-0000" not in error.message


async def test_unknown_image_version_is_not_found(client: ClanforgeClient) -> None:
    error = await fetch_error(client, ivid=999)

    assert error.reason == NOT_FOUND
    assert "Clanforge answered 404 for image version 999 (account service 1234)" in error.message
    assert "not found" in error.message


async def test_scripted_500_html_page_is_unavailable(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.script(ASID, IVID, [FakeReply.html(500, "Internal Server Error"), status_reply(4)])

    error = await fetch_error(client)
    recovered = parsed(await client.fetch_status(ASID, IVID))

    assert error.reason == UNAVAILABLE
    assert "500 Internal Server Error" in error.message
    assert recovered.state_id == 4


async def test_a_reply_with_the_known_digest_is_not_parsed(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.set_status(ASID, IVID, status_reply(3))
    first = await client.fetch_status(ASID, IVID)
    again = await client.fetch_status(ASID, IVID, first.digest)
    fake.set_status(ASID, IVID, status_reply(4, 10))
    moved = await client.fetch_status(ASID, IVID, first.digest)

    assert first.status is not None
    assert first.status.state == "Queued"
    assert again == FetchedStatus(first.digest, None)
    assert moved.status is not None
    assert moved.status.state == "Running"
    assert moved.digest != first.digest


async def test_an_error_status_is_raised_even_with_the_known_body(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    body = json.dumps(status_reply(3, image_version_id=IVID)).encode()
    fake.script(ASID, IVID, [FakeReply(200, body, JSON_HEADERS), FakeReply(503, body)])
    known = (await client.fetch_status(ASID, IVID)).digest

    with pytest.raises(UpstreamError) as raised:
        await client.fetch_status(ASID, IVID, known)

    assert raised.value.reason == UNAVAILABLE
    assert raised.value.status == 503


async def test_rate_limit_carries_retry_after(fake: FakeClanforge, client: ClanforgeClient) -> None:
    fake.set_status(ASID, IVID, FakeReply.json(429, {"error": "slow down"}, {"Retry-After": "7"}))

    error = await fetch_error(client)

    assert (error.reason, error.retry_after) == (RATE_LIMITED, 7.0)


async def test_rate_limit_retry_after_as_an_http_date_counts_from_now(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    in_a_minute = datetime.fromtimestamp(utc_now().timestamp() + 60, UTC)
    retry_after = in_a_minute.strftime("%a, %d %b %Y %H:%M:%S GMT")
    fake.set_status(
        ASID, IVID, FakeReply.json(429, {"error": "slow"}, {"Retry-After": retry_after})
    )

    error = await fetch_error(client)

    assert error.reason == RATE_LIMITED
    assert error.retry_after is not None
    assert 55 <= error.retry_after <= 60


async def test_an_absurd_retry_after_is_capped_at_a_day(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    far = {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}
    fake.set_status(ASID, IVID, FakeReply.json(503, {"error": "maintenance"}, far))

    error = await fetch_error(client)

    assert error.retry_after == MAX_RETRY_AFTER


async def test_slow_server_times_out_as_unavailable_naming_the_timeout(
    fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    fake.set_status(ASID, IVID, FakeReply(200, b"{}", delay=2.0))

    error = await fetch_error(quick_client(session, fake.base_url))

    assert error.reason == UNAVAILABLE
    assert "did not answer within the timeout" in error.message
    assert "0.3 s" in error.message


async def test_truncated_body_is_unavailable(fake: FakeClanforge, client: ClanforgeClient) -> None:
    body = FakeReply.json(200, status_reply(4, image_version_id=IVID)).body
    fake.set_status(ASID, IVID, FakeReply(200, body, truncate=True))

    error = await fetch_error(client)

    assert error.reason == UNAVAILABLE
    assert "cut short" in error.message


async def test_connection_dropped_without_answer_is_unavailable(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.set_status(ASID, IVID, FakeReply(disconnect=True))

    error = await fetch_error(client)

    assert error.reason == UNAVAILABLE
    assert "closed the connection" in error.message


async def test_refused_connection_is_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.

    error = await fetch_error(quick_client(session, f"http://127.0.0.1:{port}"))

    assert error.reason == UNAVAILABLE
    assert f"could not connect to Clanforge at 127.0.0.1:{port}" in error.message


async def test_redirect_is_not_followed(fake: FakeClanforge, client: ClanforgeClient) -> None:
    elsewhere = "https://api.multiplay.co.uk/cfp/v1/imageversion/567890/status"
    fake.set_status(ASID, IVID, FakeReply(302, headers={"Location": elsewhere}))

    error = await fetch_error(client)

    assert error.reason == BAD_REPLY
    assert error.status == 302
    assert f"redirect to {elsewhere}" in error.message
    assert "not followed" in error.message
    assert len(fake.requests) == 1


async def test_oversized_body_is_bad_reply_without_reading_it_all(
    fake: FakeClanforge, session: aiohttp.ClientSession
) -> None:
    fake.set_status(ASID, IVID, FakeReply(200, b"[" + b"0," * 10_000 + b"0]"))
    client = ClanforgeClient(session, fake.base_url, ACCESS_KEY, SECRET_KEY, max_body_bytes=1000)

    error = await fetch_error(client)

    assert error.reason == BAD_REPLY
    assert "larger than 1000 bytes" in error.message


async def test_upstream_echoing_the_secret_is_scrubbed_from_the_message(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    fake.set_status(ASID, IVID, FakeReply.json(403, {"error": f"key {ACCESS_KEY} has no access"}))

    error = await fetch_error(client)

    assert "key *** has no access" in error.message


def test_repr_hides_the_keys(client: ClanforgeClient, fake: FakeClanforge) -> None:
    text = repr(client)

    assert fake.base_url in text
    for secret in (ACCESS_KEY, SECRET_KEY, base64.b64encode(ACCESS_KEY.encode()).decode()[:8]):
        assert secret not in text
    assert "Basic" not in text


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("http://user:pass@127.0.0.1:1", id="credentials-in-url"),
        pytest.param("ftp://127.0.0.1", id="not-http"),
        pytest.param("/relative", id="relative"),
    ],
)
def test_unusable_base_url_is_refused_without_echoing_it(
    session: aiohttp.ClientSession, base_url: str
) -> None:
    with pytest.raises(ValueError, match="base_url") as caught:
        ClanforgeClient(session, base_url, ACCESS_KEY, SECRET_KEY)

    assert "pass" not in str(caught.value)


async def test_open_clanforge_builds_one_bounded_session_and_closes_it(
    fake: FakeClanforge,
) -> None:
    fake.set_status(ASID, IVID, status_reply(2))
    options = ClanforgeOptions(
        (Credential("default", ACCESS_KEY, SECRET_KEY, requests_per_second=5, burst=5),),
        base_url=fake.base_url,
        timeout_seconds=3,
        max_concurrency=2,
    )

    async with open_clanforge(options) as client:
        statuses = await asyncio.gather(*(client.fetch_status(ASID, IVID) for _ in range(5)))
        session = client._session  # the session is private; its settings are the contract
        assert session.connector is not None
        assert session.connector.limit_per_host == 2
        assert session.timeout.total == 3
        assert session.timeout.sock_read == 3

    assert [s.status.state for s in statuses if s.status] == ["Pending"] * 5
    assert session.closed
    assert ACCESS_KEY not in repr(client)
    assert ACCESS_KEY not in repr(options)
    assert SECRET_KEY not in repr(options)
