"""The status page and health endpoints as people and orchestrators see them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.tables import Watch
from tests.conftest import (
    T0,
    add_hand_watches,
    add_subscription_row,
    make_status,
    seed_delivery,
    seed_watch,
)
from tests.support.api import ADMIN_TOKEN, ApiServer, make_settings, running_api


async def _three_builds(api: ApiServer) -> dict[str, int]:
    eta = T0 + timedelta(minutes=12)
    running = await seed_watch(
        api.engine,
        [
            (T0 - timedelta(minutes=10), make_status(3, 0, image_version_id=1)),
            (T0 - timedelta(minutes=4), make_status(4, 40, image_version_id=1, eta=eta)),
        ],
        label="EU fleet",
        event_ids=["evt_eu_queued", "evt_eu_running"],
    )
    failed = await seed_watch(
        api.engine,
        [(T0 - timedelta(minutes=2), make_status(6, 60, image_version_id=2, error="Image locked"))],
        label="US fleet",
    )
    complete = await seed_watch(
        api.engine,
        [(T0 - timedelta(hours=3), make_status(5, 100, image_version_id=3))],
        label="APAC fleet",
    )
    return {"running": running, "failed": failed, "complete": complete}


async def _three_builds_and_a_pending_delivery(
    api: ApiServer, lease_owner: str | None = None
) -> None:
    """The three builds, and one webhook delivery of the running one waiting to be sent (held
    by ``lease_owner`` while it is being sent)."""
    ids = await _three_builds(api)
    sub = await add_subscription_row(api.engine, "builds", "https://h.test/")
    await seed_delivery(api.engine, "evt_eu_running", ids["running"], sub, lease_owner=lease_owner)


async def test_status_page_shows_each_watch_state_progress_eta_and_error(api: ApiServer) -> None:
    await _three_builds(api)
    status, html = await api.call("GET", "/")
    assert status == 200
    cards = re.findall(r'<section class="card watch.*?</section>', html, re.S)
    assert len(cards) == 3
    by_label = {re.search(r'class="title"[^>]*>([^<]+)', c).group(1): c for c in cards}  # type: ignore[union-attr]
    eu = by_label["EU fleet"]
    assert 'data-state="Running"' in eu
    assert 'aria-valuenow="40"' in eu
    assert "ETA in 12 min" in eu
    us = by_label["US fleet"]
    assert 'data-state="Failed"' in us
    assert "Image locked" in us
    assert 'aria-valuenow="100"' in by_label["APAC fleet"]
    assert '<meta http-equiv="refresh"' in html
    assert 'name="viewport"' in html
    assert "<script" not in html
    # Nothing loaded from elsewhere: no scripts, stylesheets or images.
    assert "<link" not in html
    assert " src=" not in html


async def test_status_page_shows_a_hundred_watches_a_page(api: ApiServer) -> None:
    await add_hand_watches(api.engine, range(1, 251))

    _, first = await api.call("GET", "/")
    _, last = await api.call("GET", "/?page=3")
    _, past = await api.call("GET", "/?page=9")

    assert "Watches (250)" in first
    assert _card_labels(first) == [f"by hand {ivid}" for ivid in range(1, 101)]
    assert "Showing 1\N{EN DASH}100 of 250" in first
    assert '<a href="/?page=2" rel="next">next</a>' in first
    assert 'rel="prev"' not in first
    assert _card_labels(last) == [f"by hand {ivid}" for ivid in range(201, 251)]
    assert "Showing 201\N{EN DASH}250 of 250" in last
    assert '<a href="/?page=2" rel="prev">previous</a>' in last
    assert 'rel="next"' not in last
    assert _card_labels(past) == []
    assert '<a href="/?page=3">Last page (3)</a>' in past


@pytest.mark.parametrize("page", ["0", "-1", "two", "1.5", "²", ""])
async def test_a_bad_page_number_is_a_400_that_says_so(api: ApiServer, page: str) -> None:
    status, text = await api.call("GET", "/", params={"page": page})

    assert status == 400
    assert text == f"page must be a whole number from 1, not {page!r}"


def _card_labels(html: str) -> list[str]:
    return re.findall(r'<a class="title" href="/watches/\d+">([^<]+)</a>', html)


async def test_status_page_names_the_replica_holding_each_delivery_in_flight(
    api: ApiServer,
) -> None:
    await _three_builds_and_a_pending_delivery(api, lease_owner="host-b:42:beef")
    _, html = await api.call("GET", "/")
    row = re.search(r"<tr data-delivery-id=.*?</tr>", html, re.S)
    assert row is not None
    assert "host-b:42:beef" in row.group(0)
    assert "imageversion.state_changed" in row.group(0)


async def test_error_text_is_escaped_on_the_page(api: ApiServer) -> None:
    await seed_watch(
        api.engine,
        [(T0, make_status(6, 10, image_version_id=9, error="<script>alert(1)</script>"))],
    )
    _, html = await api.call("GET", "/")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_watch_page_draws_a_timeline_band_per_state(api: ApiServer) -> None:
    ids = await _three_builds(api)
    status, html = await api.call("GET", f"/watches/{ids['running']}")
    assert status == 200
    assert "EU fleet" in html
    bands = re.findall(r'<rect class="band" data-state="(\w+)"', html)
    assert bands == ["Queued", "Running"]
    assert html.count("<tr><td title=") == 2


async def test_unknown_watch_page_is_404(api: ApiServer) -> None:
    status, _ = await api.call("GET", "/watches/999")
    assert status == 404


async def test_healthz_answers_and_readyz_checks_database_and_scheduler(
    api: ApiServer,
) -> None:
    assert await api.call("GET", "/healthz", token=None) == (
        200,
        {"status": "ok", "checks": {"process": "ok"}},
    )
    assert await api.call("GET", "/readyz", token=None) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}},
    )
    async with running_api(api.engine, scheduler_running=False) as stopped:
        status, body = await stopped.call("GET", "/readyz", token=None)
    assert (status, body["checks"]["scheduler"]) == (503, "not running")


async def test_metrics_report_database_figures_in_prometheus_format(api: ApiServer) -> None:
    await _three_builds_and_a_pending_delivery(api)
    status, text = await api.call("GET", "/metrics")
    assert status == 200
    assert "notifier_outbox_depth 1.0" in text
    assert "notifier_active_watches 3.0" in text
    assert 'notifier_transitions_total{state="Running"} 1.0' in text
    assert 'notifier_transitions_total{state="Queued"} 1.0' in text


async def test_status_page_names_the_replica_polling_a_watch(api: ApiServer) -> None:
    ids = await _three_builds(api)
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Watch)
            .where(Watch.id == ids["running"])
            .values(lease_owner="host-c:7:cafe", lease_until=T0 + timedelta(seconds=30))
        )
    _, html = await api.call("GET", "/")
    card = re.search(
        r'<section class="card watch[^>]*data-state="Running".*?</section>', html, re.S
    )
    assert card is not None
    assert "polled by host-c:7:cafe" in card.group(0)
    _, page = await api.call("GET", f"/watches/{ids['running']}")
    assert "polled by host-c:7:cafe" in page


async def test_a_paused_watch_reads_paused_with_the_command_that_resumes_it(
    api: ApiServer,
) -> None:
    ids = await _three_builds(api)
    async with api.engine.begin() as conn:
        await conn.execute(
            update(Watch)
            .where(Watch.id == ids["failed"])
            .values(paused_reason="Clanforge answered 404: no image version 2", next_poll_at=None)
        )
    _, html = await api.call("GET", "/")
    card = re.search(rf'<section[^>]*data-watch-id="{ids["failed"]}".*?</section>', html, re.S)
    assert card is not None
    assert 'data-state="Paused"' in card.group(0)
    assert "paused: Clanforge answered 404: no image version 2" in card.group(0)
    assert "resume with <code>notifier watch resume --image-version 2 --asid 1234</code>" in (
        card.group(0)
    )
    _, page = await api.call("GET", f"/watches/{ids['failed']}")
    assert "notifier watch resume --image-version 2 --asid 1234" in page


async def test_a_delivery_whose_retry_time_has_passed_is_due_now(api: ApiServer) -> None:
    await _three_builds_and_a_pending_delivery(api)
    api.clock.now = T0 + timedelta(minutes=1)
    _, html = await api.call("GET", "/")
    assert '<td class="next-try" data-label="next try">due now</td>' in html
    assert "ago" not in re.search(r"<tr data-delivery-id=.*?</tr>", html, re.S).group(0)  # type: ignore[union-attr]


async def test_the_list_filters_by_state_and_label_with_a_plain_get_form(api: ApiServer) -> None:
    await _three_builds(api)
    _, html = await api.call("GET", "/")
    assert '<form class="filter" method="get" action="/"' in html
    assert "<script" not in html

    _, html = await api.call("GET", "/?state=Failed")
    assert _card_labels(html) == ["US fleet"]
    assert '<option value="Failed" selected>' in html
    _, html = await api.call("GET", "/?q=fleet")
    assert sorted(_card_labels(html)) == ["APAC fleet", "EU fleet", "US fleet"]
    _, html = await api.call("GET", "/?q=apac&state=")
    assert _card_labels(html) == ["APAC fleet"]
    _, html = await api.call("GET", "/?q=apac&state=Running")
    assert _card_labels(html) == []
    assert "No watch matches this filter." in html
    status, text = await api.call("GET", "/?state=Exploded")
    assert status == 400
    assert "state must be one of Created" in text


async def test_a_watch_page_for_no_watch_is_an_html_page_saying_so(api: ApiServer) -> None:
    for path, message in [
        ("/watches/abc", "There is no watch &#39;abc&#39;: watch ids are whole numbers."),
        ("/watches/99999999999999999999", "There is no watch &#39;99999999999999999999&#39;"),
        ("/watches/999", "Watch 999 does not exist."),
    ]:
        status, html = await api.call("GET", path)
        assert status == 404, path
        assert message in html, path
        assert '<a href="/">← all watches</a>' in html


async def test_the_token_holder_sees_which_webhooks_are_signed_and_the_public_page_does_not(
    engine: AsyncEngine,
) -> None:
    async with running_api(engine) as api:
        for name, unsigned in (("signed-hook", False), ("plain-hook", True)):
            status, _ = await api.call(
                "POST",
                "/api/v1/subscriptions",
                json={
                    "name": name,
                    "kind": "webhook",
                    "target": "https://chatops.example.com/hook",
                    "unsigned": unsigned,
                },
            )
            assert status == 201
        _, html = await api.call("GET", "/")
        rows = dict(
            re.findall(
                r'<tr data-subscription="([^"]+)">.*?<td class="signing"[^>]*>([^<]+)</td>', html
            )
        )
        assert rows == {"signed-hook": "signed", "plain-hook": "unsigned"}
        assert "chatops.example.com" not in html
    public = make_settings(
        server={"listen": "127.0.0.1:0", "admin_token": ADMIN_TOKEN, "public_status": True}
    )
    async with running_api(engine, public) as api:
        _, html = await api.call("GET", "/", token=None)
        assert "data-subscription" not in html
