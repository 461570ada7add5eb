"""The admin REST API over a real socket, on SQLite and PostgreSQL: what a client sees."""

from __future__ import annotations

import logging
from datetime import timedelta

import aiohttp
import pytest
import yarl
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.api import REGISTRARS, ApiDeps
from notifier.api.app import build_app
from notifier.api.server import serve
from notifier.store.watches import add_watch
from tests.conftest import T0, add_subscription_row, make_status, seed_delivery, seed_watch
from tests.support.api import ADMIN_TOKEN, HOOK, ApiServer, make_settings, running_api

WATCH = {"account_service_id": 1234, "image_version_id": 567890, "label": "EU fleet"}


async def test_call_without_token_is_401_with_json_error(api: ApiServer) -> None:
    status, body = await api.call("GET", "/api/v1/watches", token=None)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert "Bearer" in body["error"]["message"]


async def test_call_with_wrong_token_is_401_and_does_not_echo_it(api: ApiServer) -> None:
    status, body = await api.call("GET", "/api/v1/watches", token="guess-guess")
    assert status == 401
    assert "guess-guess" not in str(body)


async def test_added_watch_is_201_and_then_listed_and_shown(api: ApiServer) -> None:
    status, created = await api.call("POST", "/api/v1/watches", json=WATCH)
    assert status == 201
    assert created["image_version_id"] == 567890
    assert created["source"] == "api"
    assert created["active"] is True
    assert created["status"] is None

    status, listing = await api.call("GET", "/api/v1/watches")
    assert status == 200
    assert [w["label"] for w in listing["items"]] == ["EU fleet"]

    status, shown = await api.call("GET", f"/api/v1/watches/{created['id']}")
    assert (status, shown["id"]) == (200, created["id"])


async def test_duplicate_watch_is_409(api: ApiServer) -> None:
    await api.call("POST", "/api/v1/watches", json=WATCH)
    status, body = await api.call("POST", "/api/v1/watches", json=WATCH)
    assert status == 409
    assert body["error"] == {
        "code": "duplicate",
        "message": "image version 567890 of account service 1234 is already watched",
    }


async def test_body_that_is_not_json_is_400(api: ApiServer) -> None:
    status, body = await api.call(
        "POST", "/api/v1/watches", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert body["error"]["code"] == "bad_json"


async def test_json_that_is_not_an_object_is_400(api: ApiServer) -> None:
    status, body = await api.call("POST", "/api/v1/watches", json=[1, 2])
    assert (status, body["error"]["code"]) == (400, "bad_json")


async def test_wrong_type_is_422_naming_the_field(api: ApiServer) -> None:
    status, body = await api.call(
        "POST", "/api/v1/watches", json={**WATCH, "image_version_id": "567890"}
    )
    assert status == 422
    assert body["error"]["code"] == "invalid"
    assert body["error"]["message"].startswith("image_version_id: ")


async def test_unknown_field_is_422(api: ApiServer) -> None:
    status, body = await api.call("POST", "/api/v1/watches", json={**WATCH, "colour": "red"})
    assert (status, body["error"]["message"]) == (422, "colour: unknown field")


async def test_oversized_body_is_413_and_nothing_is_added(api: ApiServer) -> None:
    status, body = await api.call("POST", "/api/v1/watches", json={**WATCH, "label": "x" * 100_000})
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    _, listing = await api.call("GET", "/api/v1/watches")
    assert listing["items"] == []


async def test_unknown_watch_id_is_404_for_show_remove_pause_resume(api: ApiServer) -> None:
    for method, path in [
        ("GET", "/api/v1/watches/999"),
        ("DELETE", "/api/v1/watches/999"),
        ("POST", "/api/v1/watches/999/pause"),
        ("POST", "/api/v1/watches/999/resume"),
        ("GET", "/api/v1/watches/abc"),
    ]:
        status, body = await api.call(method, path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path


async def test_pause_stops_polling_and_resume_polls_now(api: ApiServer) -> None:
    _, created = await api.call("POST", "/api/v1/watches", json=WATCH)
    api.clock.now = T0 + timedelta(hours=1)
    status, paused = await api.call("POST", f"/api/v1/watches/{created['id']}/pause")
    assert (status, paused["active"]) == (200, False)
    _, active_only = await api.call("GET", "/api/v1/watches?active=true")
    assert active_only["items"] == []
    status, resumed = await api.call("POST", f"/api/v1/watches/{created['id']}/resume")
    assert (status, resumed["active"]) == (200, True)
    assert resumed["next_poll_at"] == "2026-11-28T18:00:00Z"


async def test_removed_watch_is_204_then_gone(api: ApiServer) -> None:
    _, created = await api.call("POST", "/api/v1/watches", json=WATCH)
    status, _ = await api.call("DELETE", f"/api/v1/watches/{created['id']}")
    assert status == 204
    status, _ = await api.call("GET", f"/api/v1/watches/{created['id']}")
    assert status == 404


async def test_watch_list_filters_by_state(api: ApiServer) -> None:
    await seed_watch(api.engine, [(T0, make_status(4, 40, image_version_id=1))], label="running")
    await seed_watch(api.engine, [(T0, make_status(6, 60, image_version_id=2))], label="failed")
    status, body = await api.call("GET", "/api/v1/watches?state=Failed")
    assert status == 200
    assert [(w["label"], w["status"]["state"]) for w in body["items"]] == [("failed", "Failed")]


async def test_bad_query_parameter_is_400_naming_it(api: ApiServer) -> None:
    status, body = await api.call("GET", "/api/v1/watches?account_service_id=abc")
    assert status == 400
    assert body["error"]["message"] == (
        "account_service_id must be a whole number from 1 to 9007199254740991, got 'abc'"
    )
    status, body = await api.call("GET", "/api/v1/watches?state=Exploded")
    assert (status, body["error"]["message"]) == (400, "unknown state 'Exploded'")


async def test_unknown_api_path_is_404_json(api: ApiServer) -> None:
    status, body = await api.call("GET", "/api/v1/nothing-here")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_wrong_method_is_405_json(api: ApiServer) -> None:
    status, body = await api.call("PUT", "/api/v1/watches")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


# ---------------------------------------------------------------- subscriptions


async def test_added_subscription_is_201_and_listed(api: ApiServer) -> None:
    status, created = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    assert status == 201
    assert created["source"] == "api"
    assert created["filters"]["events"] == ["imageversion.failed"]
    assert created["target"] == "https://chatops.example.com"  # the path may hold a token
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert [s["name"] for s in listing["items"]] == ["chatops"]


async def test_duplicate_subscription_name_is_409(api: ApiServer) -> None:
    await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    status, body = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    assert (status, body["error"]["message"]) == (
        409,
        "a subscription named 'chatops' already exists",
    )


async def test_subscription_with_bad_url_or_event_is_422(api: ApiServer) -> None:
    status, body = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "target": "ftp://x"}
    )
    assert status == 422
    assert body["error"]["message"].startswith("target: must be an http(s) URL")
    status, body = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "target": "http://chatops.example.com/"}
    )
    assert (status, body["error"]["message"]) == (
        422,
        "target: must be https:// (http only to loopback)",
    )
    status, body = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "events": ["imageversion.exploded"]}
    )
    assert status == 422
    assert "unknown event type 'imageversion.exploded'" in body["error"]["message"]


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("https://bot:t0ken-s3cret@chat.example.com/hook", "must not carry user:password@"),
        ("ftp://chat.example.com/hook/t0ken-s3cret", "got 'ftp://chat.example.com'"),
        ("https://chat.example.com:99999/t0ken-s3cret", "is not a valid URL"),
    ],
)
async def test_a_webhook_target_follows_the_configurations_rule_without_quoting_it(
    api: ApiServer, target: str, problem: str
) -> None:
    status, body = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "target": target})
    assert status == 422
    assert problem in body["error"]["message"]
    assert "t0ken-s3cret" not in body["error"]["message"]


async def test_removed_subscription_is_204_config_one_is_409_unknown_is_404(
    api: ApiServer,
) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    config_id = await add_subscription_row(api.engine, "builds", "C1", kind="slack_channel")
    status, _ = await api.call("DELETE", f"/api/v1/subscriptions/{created['id']}")
    assert status == 204
    status, body = await api.call("DELETE", f"/api/v1/subscriptions/{config_id}")
    assert (status, body["error"]["code"]) == (409, "from_config")
    status, body = await api.call("DELETE", f"/api/v1/subscriptions/{created['id']}")
    assert status == 404


async def test_config_watch_is_not_removed_but_409_saying_where_it_comes_from(
    api: ApiServer,
) -> None:
    watch_id = await add_watch(api.engine, 1234, 567890, "EU fleet", "config", T0)
    status, body = await api.call("DELETE", f"/api/v1/watches/{watch_id}")
    assert (status, body["error"]["code"]) == (409, "from_config")
    assert body["error"]["message"] == (
        f"watch {watch_id} (image version 567890) comes from the configuration file; remove its "
        "[[watch]] entry there"
    )
    status, _ = await api.call("GET", f"/api/v1/watches/{watch_id}")
    assert status == 200


async def test_ids_above_the_json_safe_range_get_the_clis_message(api: ApiServer) -> None:
    too_big = {**WATCH, "image_version_id": 2**53}
    status, body = await api.call("POST", "/api/v1/watches", json=too_big)
    assert (status, body["error"]["message"]) == (
        422,
        "image_version_id: must be a whole number from 1 to 9007199254740991, got 9007199254740992",
    )
    status, body = await api.call("GET", "/api/v1/events?image_version_id=99999999999999999999999")
    assert (status, body["error"]["message"]) == (
        400,
        "image_version_id must be a whole number from 1 to 9007199254740991, "
        "got '99999999999999999999999'",
    )
    status, body = await api.call("GET", "/api/v1/watches/99999999999999999999999")
    assert (status, body["error"]["code"]) == (404, "not_found")


# ---------------------------------------------------------------- events and deliveries


async def test_events_come_newest_first_a_page_at_a_time(api: ApiServer) -> None:
    history = [
        (T0 + timedelta(minutes=i), make_status(state, 0, image_version_id=7))
        for i, state in enumerate([1, 3, 4, 5])
    ]
    await seed_watch(api.engine, history)
    status, page = await api.call("GET", "/api/v1/events?limit=3")
    assert status == 200
    assert [e["current"]["state"] for e in page["items"]] == ["Complete", "Running", "Queued"]
    _, rest = await api.call("GET", f"/api/v1/events?limit=3&before={page['next_before']}")
    assert [e["current"]["state"] for e in rest["items"]] == ["Created"]
    assert rest["next_before"] is None


async def test_deliveries_list_shows_lease_owner_and_retry_revives_dead(api: ApiServer) -> None:
    watch_id = await seed_watch(api.engine, [(T0, make_status(6, 60))], event_ids=["evt_failed"])
    sub_id = await add_subscription_row(api.engine, "hook", "https://h.test/", source="api")
    await seed_delivery(
        api.engine,
        "evt_failed",
        watch_id,
        sub_id,
        status="dead",
        last_error="HTTP 500",
        attempts=10,
    )
    status, body = await api.call("GET", "/api/v1/deliveries?status=dead")
    assert status == 200
    (dead,) = body["items"]
    assert (dead["subscription"], dead["last_error"], dead["attempts"]) == ("hook", "HTTP 500", 10)

    status, body = await api.call("POST", "/api/v1/deliveries/retry", json={"all_dead": True})
    assert (status, body) == (200, {"retried": 1})
    _, body = await api.call("GET", "/api/v1/deliveries?status=pending")
    assert [d["id"] for d in body["items"]] == [dead["id"]]


async def test_retry_without_ids_or_all_dead_is_422(api: ApiServer) -> None:
    status, body = await api.call("POST", "/api/v1/deliveries/retry", json={})
    assert (status, body["error"]["message"]) == (422, "give ids or all_dead: true")


async def test_openapi_document_is_served_behind_the_token(api: ApiServer) -> None:
    status, _ = await api.call("GET", "/api/v1/openapi.json", token=None)
    assert status == 401
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    assert "/api/v1/watches/{id}/pause" in doc["paths"]


async def test_admin_token_never_reaches_the_logs(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api.call("GET", "/api/v1/watches")
    await api.call("GET", "/api/v1/watches", token="wrong-token-value")
    await api.call("POST", "/api/v1/watches", json={"image_version_id": ADMIN_TOKEN})
    assert ADMIN_TOKEN not in caplog.text
    assert "wrong-token-value" not in caplog.text


async def test_a_route_module_plugs_in_with_one_registrar_behind_the_same_auth(
    engine: AsyncEngine,
) -> None:
    def register(app: web.Application, deps: ApiDeps) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"replica": deps.replica_id})

        app.router.add_get("/api/v1/hello", hello)

    settings = make_settings()
    assert settings.server is not None
    deps = ApiDeps(engine=engine, settings=settings, clock=lambda: T0, replica_id="r1")
    app = build_app(deps, [*REGISTRARS, register])
    async with serve(app, settings.server) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "api/v1/hello") as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with session.get(url + "api/v1/hello", headers=headers) as response:
            assert await response.json() == {"replica": "r1"}
        async with session.get(url + "healthz") as response:
            assert response.status == 200


async def test_percent_encoded_api_path_still_needs_the_token(api: ApiServer) -> None:
    async with api.session.get(yarl.URL(api.url + "%61pi/v1/watches", encoded=True)) as response:
        assert response.status == 401


OWNER, GROUP = "<@U0OWNER01>", "<!subteam^S0ONCALL1>"


async def test_a_watch_is_created_with_owners_and_patched_to_others(api: ApiServer) -> None:
    status, created = await api.call("POST", "/api/v1/watches", json={**WATCH, "owners": [OWNER]})
    assert (status, created["owners"]) == (201, [OWNER])

    status, patched = await api.call(
        "PATCH", f"/api/v1/watches/{created['id']}", json={"owners": [GROUP, GROUP]}
    )
    assert (status, patched["owners"]) == (200, [GROUP])
    _, shown = await api.call("GET", f"/api/v1/watches/{created['id']}")
    assert shown["owners"] == [GROUP]


async def test_owners_of_a_watch_from_the_file_are_set_in_the_file(api: ApiServer) -> None:
    watch_id = await add_watch(api.engine, 1234, 567890, "EU fleet", "config", T0)
    status, body = await api.call("PATCH", f"/api/v1/watches/{watch_id}", json={"owners": [OWNER]})
    assert status == 409
    assert "set its owners in its [[watch]] entry" in body["error"]["message"]


async def test_patching_a_watch_that_does_not_exist_is_404(api: ApiServer) -> None:
    status, body = await api.call("PATCH", "/api/v1/watches/999", json={"owners": []})
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_slack_subscription_takes_mentions_and_a_digest(engine: AsyncEngine) -> None:
    settings = make_settings(slack={"bot_token": "xoxb-test"})
    async with running_api(engine, settings) as api:
        status, created = await api.call(
            "POST",
            "/api/v1/subscriptions",
            json={
                "name": "builds",
                "kind": "slack_channel",
                "target": "C0BUILDS",
                "mention_on": ["imageversion.failed", "imageversion.stalled"],
                "mention": ["<!here>"],
                "digest": "09:00 Europe/Berlin",
            },
        )
    assert status == 201
    assert created["mention_on"] == ["imageversion.failed", "imageversion.stalled"]
    assert (created["mention"], created["digest"]) == (["<!here>"], "09:00 Europe/Berlin")


async def test_a_digest_time_that_is_not_one_is_422_saying_how_to_write_it(
    api: ApiServer,
) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/subscriptions",
        json={"name": "x", "kind": "webhook", "target": "https://example.com/h", "digest": "9am"},
    )
    assert status == 422
    assert body["error"]["message"].startswith("digest: '9am' is not a digest time")
