"""Every input gets an answer, never a 500: ids past any database's range, numbers thousands of
digits long, JSON nested thousands deep or megabytes large."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from notifier.cli import main
from notifier.metrics import OTHER_STATE, transitions_by_known_state
from tests.support.api import ApiServer

HUGE = "9" * 5000
BEYOND = "99999999999999999999"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/watches/{BEYOND}"),
        ("GET", f"/api/v1/watches/{HUGE}"),
        ("DELETE", f"/api/v1/watches/{BEYOND}"),
        ("POST", f"/api/v1/watches/{BEYOND}/pause"),
        ("POST", f"/api/v1/watches/{HUGE}/resume"),
        ("DELETE", f"/api/v1/subscriptions/{BEYOND}"),
        ("DELETE", "/api/v1/subscriptions/-1"),
        ("GET", f"/watches/{BEYOND}"),
        ("GET", f"/watches/{HUGE}"),
        ("GET", "/watches/-5"),
        ("GET", f"/?page={HUGE}"),
        ("GET", f"/api/v1/events?watch_id={HUGE}"),
        ("GET", f"/api/v1/events?limit={HUGE}"),
        ("GET", f"/api/v1/deliveries?limit={BEYOND}"),
    ],
)
async def test_ids_and_numbers_beyond_range_are_404_or_400(
    api: ApiServer, method: str, path: str
) -> None:
    status, body = await api.call(method, path)
    assert status in (400, 404), body
    assert "Traceback" not in str(body)


async def test_a_page_number_past_the_end_is_a_page_saying_so(api: ApiServer) -> None:
    await api.call("POST", "/api/v1/watches", json={"account_service_id": 1, "image_version_id": 2})
    status, html = await api.call("GET", f"/?page={BEYOND}")
    assert status == 200
    assert "past the last page" in html


@pytest.mark.parametrize("depth", [100, 1000, 20_000])
async def test_deeply_nested_json_is_400(api: ApiServer, depth: int) -> None:
    body = "[" * depth + "]" * depth
    status, answer = await api.call(
        "POST", "/api/v1/watches", data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert answer["error"]["code"] == "bad_json"


async def test_a_huge_body_is_413(api: ApiServer) -> None:
    body = io.BytesIO(b'{"label": "' + b"x" * 2_000_000 + b'"}')
    status, answer = await api.call(
        "POST", "/api/v1/watches", data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert answer["error"]["code"] == "body_too_large"


async def test_a_huge_number_in_json_is_an_answer_not_a_500(api: ApiServer) -> None:
    body = '{"account_service_id": ' + HUGE + ', "image_version_id": 1}'
    status, _ = await api.call(
        "POST", "/api/v1/watches", data=body, headers={"Content-Type": "application/json"}
    )
    assert status in (400, 422)


@pytest.mark.parametrize(
    "argv",
    [
        ["deliveries", "retry", BEYOND],
        ["deliveries", "list", "--limit", BEYOND],
        ["watch", "remove", "--image-version", HUGE],
        ["watch", "add", "--asid", "1", "--image-version", BEYOND],
        ["events", "--image-version", "-1"],
    ],
)
def test_the_cli_answers_numbers_beyond_range_with_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notifier.toml"
    config.write_text('[clanforge]\naccess_key = "a"\nsecret_key = "s"\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--config", str(config)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert len(err) < 300
    assert not (tmp_path / "notifier.db").exists()


def test_metric_labels_come_from_a_closed_set_whatever_upstream_calls_a_state() -> None:
    rows = [("Running", 3), ("Failed", 1), (f"state-{'x' * 500}", 1), ("Bogus", 2), (None, 1)]
    rows += [(f"made-up-{i}", 1) for i in range(1000)]
    counts = transitions_by_known_state(rows)
    assert counts == {"Running": 3, "Failed": 1, OTHER_STATE: 1004}
