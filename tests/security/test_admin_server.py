"""The admin server against a web page in a browser on the same machine, and against anyone
without the token: each attack gets a refusal and changes nothing."""

from __future__ import annotations

import re

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.subscriptions import list_subscriptions
from notifier.store.watches import list_watches
from tests.conftest import T0, add_subscription_row, make_status, seed_delivery, seed_watch
from tests.support.api import ADMIN_TOKEN, ApiServer, make_settings, running_api

NO_TOKEN = make_settings(server={"listen": "127.0.0.1:0"})
PUBLIC = make_settings(
    server={"listen": "127.0.0.1:0", "admin_token": ADMIN_TOKEN, "public_status": True}
)
WATCH = {"account_service_id": 1234, "image_version_id": 567890}
RECEIVER_ERROR = "webhook https://hooks.internal.example:8443 answered 400: tenant=acme secret body"


async def _raw(
    api: ApiServer, method: str, path: str, **kwargs: object
) -> tuple[int, CIMultiDictProxy[str], str]:
    async with api.session.request(method, api.url + path.lstrip("/"), **kwargs) as response:  # type: ignore[arg-type]
        return response.status, response.headers, await response.text()


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},
    ],
)
async def test_a_simple_cross_site_post_without_a_token_is_415_and_adds_nothing(
    engine: AsyncEngine, headers: dict[str, str]
) -> None:
    async with running_api(engine, NO_TOKEN) as api:
        body = '{"account_service_id": 1234, "image_version_id": 567890}'
        status, _, text = await _raw(api, "POST", "/api/v1/watches", data=body, headers=headers)
        assert status == 415
        assert "application/json" in text
        assert await list_watches(engine) == []


async def test_a_request_from_another_origin_is_403_even_as_json(engine: AsyncEngine) -> None:
    async with running_api(engine, NO_TOKEN) as api:
        for origin in ("https://evil.example", "null", f"{api.url.rstrip('/')}.evil.example"):
            status, _ = await api.call(
                "POST",
                "/api/v1/subscriptions",
                token=None,
                json={"name": "x", "kind": "webhook", "target": "https://8.8.8.8/"},
                headers={"Origin": origin},
            )
            assert status == 403
        assert await list_subscriptions(engine) == []
        # The server's own origin (a same-origin fetch) is fine.
        status, _ = await api.call(
            "POST",
            "/api/v1/watches",
            token=None,
            json=WATCH,
            headers={"Origin": api.url.rstrip("/")},
        )
        assert status == 201


@pytest.mark.parametrize("path", ["/api/v1/watches", "/", "/metrics"])
async def test_dns_rebinding_a_foreign_host_is_421_without_a_token(
    engine: AsyncEngine, path: str
) -> None:
    async with running_api(engine, NO_TOKEN) as api:
        await api.call("POST", "/api/v1/watches", token=None, json=WATCH)
        status, _, text = await _raw(api, "GET", path, headers={"Host": "attacker.example"})
        assert status == 421
        assert "567890" not in text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "app.localhost"])
async def test_loopback_hosts_are_answered_without_a_token(engine: AsyncEngine, host: str) -> None:
    async with running_api(engine, NO_TOKEN) as api:
        port = api.url.rstrip("/").rsplit(":", 1)[1]
        status, _, _ = await _raw(api, "GET", "/api/v1/watches", headers={"Host": f"{host}:{port}"})
        assert status == 200


@pytest.mark.parametrize("path", ["/", "/metrics", "/watches/1"])
async def test_with_a_token_pages_and_metrics_need_it(api: ApiServer, path: str) -> None:
    await seed_watch(api.engine, [(T0, make_status(6, 10, error="Image locked"))])
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": aiohttp.encode_basic_auth("ops", "wrong")},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": aiohttp.encode_basic_auth(ADMIN_TOKEN, "")},
    ):
        status, response_headers, text = await _raw(api, "GET", path, headers=headers)
        assert status == 401
        assert response_headers["WWW-Authenticate"].startswith("Basic ")
        assert "Image locked" not in text
        assert "notifier_" not in text
    for headers in (
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        {"Authorization": aiohttp.encode_basic_auth("anyone", ADMIN_TOKEN)},
    ):
        status, _, _ = await _raw(api, "GET", path, headers=headers)
        assert status == 200


async def test_probes_stay_open_with_a_token(api: ApiServer) -> None:
    for path in ("/healthz", "/readyz"):
        status, _, _ = await _raw(api, "GET", path)
        assert status == 200


async def test_a_public_page_shows_no_receiver_errors_hosts_ports_or_replicas(
    engine: AsyncEngine,
) -> None:
    async with running_api(engine, PUBLIC, replica_id="build-host-7:4242:beef") as api:
        watch = await seed_watch(engine, [(T0, make_status(4, 10))], event_ids=["evt_1"])
        sub = await add_subscription_row(engine, "chatops", "https://hooks.internal.example:8443/x")
        await seed_delivery(
            engine,
            "evt_1",
            watch,
            sub,
            status="dead",
            last_error=RECEIVER_ERROR,
            lease_owner="build-host-7:4242:beef",
        )
        status, _, public = await _raw(api, "GET", "/")
        assert status == 200
        for leak in ("hooks.internal.example", "8443", "secret body", "build-host-7"):
            assert leak not in public
        assert "failed (details need the admin token)" in public
        # The same page with the token shows the details to whoever may see them.
        status, _, private = await _raw(
            api, "GET", "/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert RECEIVER_ERROR.split(": ", 1)[1] in private
        # The API stays closed: public_status opens pages, not the admin API.
        status, _, _ = await _raw(api, "GET", "/api/v1/deliveries")
        assert status == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/v1/watches"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/no-such-page"),
        ("GET", "/api/v1/no-such-route"),
        ("POST", "/api/v1/watches"),
    ],
)
async def test_every_response_carries_the_security_headers_and_no_version(
    api: ApiServer, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        _, response_headers, _ = await _raw(api, method, path, headers=headers)
        csp = response_headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # no script at all, inline or not
        assert response_headers["X-Content-Type-Options"] == "nosniff"
        assert response_headers["Referrer-Policy"] == "no-referrer"
        assert response_headers["X-Frame-Options"] == "DENY"
        server = response_headers.get("Server", "")
        assert not re.search(r"\d|python|aiohttp", server, re.I), server
