"""Signed webhooks, presets and templates through the admin API: the contract a client sees."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from notifier.core.webhook_secrets import check_secret
from tests.conftest import T0, add_subscription_row
from tests.support.api import HOOK, ApiServer

GIVEN = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()


async def test_a_webhook_without_a_secret_gets_one_generated_and_shown_once(
    api: ApiServer,
) -> None:
    status, created = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    assert status == 201
    secret = created["secret"]
    assert check_secret(secret) == secret
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["signed"] is True
    status, listing = await api.call("GET", "/api/v1/subscriptions")
    assert status == 200
    [item] = listing["items"]
    assert item["signed"] is True
    assert "secret" not in item
    assert "whsec_" not in json.dumps(listing)


async def test_two_webhooks_get_different_secrets(api: ApiServer) -> None:
    _, first = await api.call("POST", "/api/v1/subscriptions", json=HOOK)
    _, second = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "name": "other"})
    assert first["secret"] != second["secret"]


async def test_a_given_secret_is_the_one_returned(api: ApiServer) -> None:
    status, created = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "secret": GIVEN}
    )
    assert (status, created["secret"], created["signed"]) == (201, GIVEN, True)


async def test_unsigned_true_has_no_secret_and_is_listed_as_unsigned(api: ApiServer) -> None:
    status, created = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "unsigned": True}
    )
    assert (status, created["secret"], created["signed"]) == (201, None, False)
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert [s["signed"] for s in listing["items"]] == [False]


async def test_a_slack_channel_has_no_secret(api: ApiServer) -> None:
    status, created = await api.call(
        "POST",
        "/api/v1/subscriptions",
        json={"name": "builds", "kind": "slack_channel", "target": "C1"},
    )
    assert (status, created["secret"], created["signed"]) == (201, None, False)


async def test_rotation_returns_a_new_secret_and_the_overlap_end(api: ApiServer) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "secret": GIVEN})
    api.clock.now = T0 + timedelta(hours=1)
    status, rotated = await api.call("POST", f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    assert status == 200
    assert rotated["secret"] not in (GIVEN, None)
    assert check_secret(rotated["secret"]) == rotated["secret"]
    assert (rotated["id"], rotated["name"]) == (created["id"], "chatops")
    # [delivery] secret_overlap_seconds defaults to a day.
    assert rotated["previous_secret_until"] == "2026-11-29T18:00:00Z"
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    [item] = listing["items"]
    assert item["previous_secret_until"] == "2026-11-29T18:00:00Z"
    assert "whsec_" not in json.dumps(listing)


async def test_rotation_takes_a_given_secret(api: ApiServer) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "secret": GIVEN})
    status, rotated = await api.call(
        "POST", f"/api/v1/subscriptions/{created['id']}/rotate-secret", json={"secret": OTHER}
    )
    assert (status, rotated["secret"]) == (200, OTHER)


async def test_rotating_an_unsigned_webhook_starts_signing_without_an_overlap(
    api: ApiServer,
) -> None:
    _, created = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, "unsigned": True})
    status, rotated = await api.call("POST", f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    assert (status, rotated["previous_secret_until"]) == (200, None)
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert [s["signed"] for s in listing["items"]] == [True]


async def test_rotation_of_a_config_subscription_is_409_naming_the_file(api: ApiServer) -> None:
    config_id = await add_subscription_row(api.engine, "filed", "https://chatops.example.com/hook")
    status, body = await api.call("POST", f"/api/v1/subscriptions/{config_id}/rotate-secret")
    assert (status, body["error"]["code"]) == (409, "from_config")
    assert "configuration file" in body["error"]["message"]
    assert "webhook_secret" in body["error"]["message"]


async def test_rotation_of_a_slack_channel_is_409_and_of_nothing_404(api: ApiServer) -> None:
    _, created = await api.call(
        "POST",
        "/api/v1/subscriptions",
        json={"name": "builds", "kind": "slack_channel", "target": "C1"},
    )
    status, body = await api.call("POST", f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    assert (status, body["error"]["code"]) == (409, "not_a_webhook")
    for path in (
        "/api/v1/subscriptions/999/rotate-secret",
        "/api/v1/subscriptions/x/rotate-secret",
    ):
        status, body = await api.call("POST", path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path


async def test_a_preset_is_taken_and_listed(api: ApiServer) -> None:
    status, created = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "preset": "discord"}
    )
    assert (status, created["preset"], created["custom_template"]) == (201, "discord", False)


async def test_a_template_is_checked_and_listed_without_its_source(api: ApiServer) -> None:
    template = '{"text": {{ headline | json }}}'
    status, created = await api.call(
        "POST", "/api/v1/subscriptions", json={**HOOK, "template": template}
    )
    assert (status, created["custom_template"], created["preset"]) == (201, True, None)
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert "headline" not in json.dumps(listing)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"template": '{"text": {{ nope.at_all | json }}}'}, "template: fails on a sample"),
        ({"template": '{"text": {{ headline }}}'}, "renders invalid JSON"),
        ({"template": "{% for %}"}, "template: does not compile"),
        (
            {"template": '{"n": [{% for i in range(100000) %}{{ i }},{% endfor %}0]}'},
            "range() of more than 1000 items",
        ),
        (
            {
                "template": '{"n": [{% for i in range(1000) %}{% for j in range(1000) %}'
                "{{ j }},{% endfor %}{% endfor %}0]}"
            },
            "more than 10000 loop iterations",
        ),
        ({"template": '{"t": {{ (("x" * 60000) * 3) | json }}}'}, "repetition"),
        ({"template": "x", "preset": "teams"}, "give template or preset, not both"),
        ({"preset": "irc"}, "preset: Input should be"),
        ({"template": "x" * 20000}, "template: String should have at most 16384 characters"),
    ],
)
async def test_a_bad_template_or_preset_is_422_naming_the_problem(
    api: ApiServer, extra: dict[str, object], problem: str
) -> None:
    status, body = await api.call("POST", "/api/v1/subscriptions", json={**HOOK, **extra})
    assert (status, body["error"]["code"]) == (422, "invalid")
    assert problem in body["error"]["message"]
    assert "\n" not in body["error"]["message"]
    _, listing = await api.call("GET", "/api/v1/subscriptions")
    assert listing["items"] == []


@pytest.mark.parametrize("option", [{"secret": GIVEN}, {"unsigned": True}, {"preset": "teams"}])
async def test_webhook_options_on_a_slack_channel_are_422(
    api: ApiServer, option: dict[str, object]
) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/subscriptions",
        json={"name": "builds", "kind": "slack_channel", "target": "C1", **option},
    )
    assert status == 422
    assert body["error"]["message"] == f"body: {next(iter(option))} goes with kind webhook"
