"""The service as a good citizen of a rate-limited Clanforge, and what it notices over time:
stalled and resumed jobs, ETA slips, its own ETA, and image versions discovered from installs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from notifier.config import parse_config
from notifier.notify.payload import webhook_payload
from notifier.notify.render import render_thread_reply
from notifier.service import Service
from notifier.store.events import recent_events
from notifier.store.watches import list_watches
from notifier.testing.fake_clanforge import FakeClanforge, FakeReply, RecordedRequest, status_reply
from tests.conftest import T0, service_config
from tests.support.clock import HandClock

ASID = 1234
LIMIT = 8
WATCHES = 30
RUN_SECONDS = 6.0
RETRY_AFTER = 1.0


def rate_before_and_after(
    requests: list[RecordedRequest], first_429: float, settled: float
) -> tuple[int, float, float, int]:
    """Requests before the first 429 and over how many seconds they were sent, the average rate
    once the limiter settled, and the most requests seen in any one-second window then."""
    times = sorted(r.time for r in requests)
    before = [t for t in times if t < first_429]
    before_span = first_429 - times[0]
    after = [t for t in times if t > settled]
    span = max(after[-1] - after[0], 1e-9) if len(after) > 1 else 1.0
    busiest = max(
        (sum(1 for u in after if t <= u < t + 1.0) for t in after),
        default=0,
    )
    return len(before), before_span, len(after) / span, busiest


async def test_service_stays_under_the_rate_limit_after_the_first_429_and_polls_every_watch(
    sqlite_url: str, record_property: Callable[[str, object], None]
) -> None:
    async with FakeClanforge(rate_limit=LIMIT, retry_after=f"{RETRY_AFTER:g}") as fake:
        for i in range(WATCHES):
            fake.set_status(ASID, 100 + i, status_reply(4, 10))
        config = service_config(
            sqlite_url,
            fake.base_url,
            clanforge_extra="requests_per_second = 20\nburst = 20\nmax_concurrency = 20",
            sections="[poll]\ninterval_seconds = 0.5\nrunning_interval_seconds = 0.5\n"
            "[detect]\nstall_after_seconds = 0\nestimate_eta = false\n",
            watches=[(ASID, 100 + i) for i in range(WATCHES)],
        )
        settings = parse_config(config, {})
        async with Service(settings) as service:
            stop = asyncio.Event()
            running = asyncio.create_task(service.run(stop))
            await asyncio.sleep(RUN_SECONDS)
            stop.set()
            await running
            events = await recent_events(service.engine, 1000)
        assert fake.limited_at, "the configured rate was meant to exceed the fake's limit"
        first_429 = fake.limited_at[0]
        # After the first 429 the limiter climbs back to the configured 20/s within twice
        # Retry-After, which draws one more 429 from this fake's limit of 8; that one lowers the
        # ceiling below 8. Past it (its own Retry-After, and answers in flight), no 429 at all.
        settled = first_429 + 3 * RETRY_AFTER + 0.5
        late = [t for t in fake.limited_at if t > settled]
        before, before_span, after, busiest = rate_before_and_after(
            fake.requests, first_429, settled
        )
    record_property("requests_before_first_429", before)
    record_property("seconds_before_first_429", round(before_span, 3))
    record_property("requests_per_second_once_settled", round(after, 2))
    record_property("busiest_second_once_settled", busiest)
    print(
        f"\nrate limit {LIMIT}/s, configured 20/s burst 20: {before} requests in "
        f"{before_span:.3f} s before the first 429 ({before / max(before_span, 1e-3):.0f}/s), "
        f"{after:.2f}/s on average once settled, busiest one-second window then: {busiest}"
    )
    assert late == []
    assert busiest <= LIMIT
    for i in range(WATCHES):
        assert fake.polls(ASID, 100 + i) >= 1
    assert not [e for e in events if e.type == "watch.poll_failing"]


async def test_stalled_resumed_eta_slip_and_estimated_eta_reach_the_event_history(
    fake: FakeClanforge, database_url: str
) -> None:
    clock = HandClock()
    started = int(clock().timestamp())
    config = service_config(
        database_url,
        fake.base_url,
        sections="""
[poll]
interval_seconds = 1
running_interval_seconds = 1
spread = 0
[detect]
stall_after_seconds = 600
eta_slip_seconds = 300
overdue_grace_seconds = 3600
""",
        watches=[(ASID, 1), (ASID, 2)],
    )
    async with Service(parse_config(config, {}), clock=clock) as service:
        # Watch 1: upstream gives an ETA that slips; progress stops, then moves again.
        fake.set_status(ASID, 1, status_reply(4, 10, eta=started + 1800, updated=started))
        # Watch 2: upstream gives no ETA; we estimate one from the progress rate.
        fake.set_status(ASID, 2, status_reply(4, 20, updated=started))
        await service.tick()
        clock.advance(300)
        fake.set_status(ASID, 1, status_reply(4, 10, eta=started + 2400, updated=started))
        fake.set_status(ASID, 2, status_reply(4, 40, updated=started + 300))
        await service.tick()
        clock.advance(400)  # 700 s without a move on watch 1
        await service.tick()
        clock.advance(60)
        fake.set_status(ASID, 1, status_reply(4, 30, eta=started + 2400, updated=started + 760))
        await service.tick()
        first = list(reversed(await recent_events(service.engine, 100, 1)))
        second = list(reversed(await recent_events(service.engine, 100, 2)))
        watches = {w.image_version_id: w for w in await list_watches(service.engine)}

    assert [e.type for e in first] == [
        "imageversion.state_changed",
        "imageversion.eta_changed",
        "imageversion.stalled",
        "imageversion.resumed",
    ]
    slip = first[1]
    assert slip.detail["slipped_seconds"] == 600
    assert "ETA" in render_thread_reply(slip).text
    assert webhook_payload(slip)["data"]["detail"]["eta"] == slip.detail["eta"]

    estimated = watches[2].status
    assert estimated is not None
    assert estimated.eta_estimated
    assert estimated.eta is not None
    # Last polled 760 s after the first sighting at 20 %, still at 40 %: 20 points in 760 s, so
    # the 60 left take 2,280 s more: 3,040 s after 17:00, rounded up to the minute.
    assert estimated.eta == T0 + timedelta(minutes=51)
    # The estimate itself slipped as the job slowed down: said so, and marked as ours.
    assert [e.type for e in second] == ["imageversion.state_changed", "imageversion.eta_changed"]
    assert second[1].detail["estimated"] is True
    assert second[1].current.eta_estimated
    assert webhook_payload(second[1])["data"]["current"]["eta_estimated"] is True


async def test_discovery_watches_two_new_image_versions_from_the_install_status(
    fake: FakeClanforge, database_url: str
) -> None:
    fake.set_installs(ASID, [701, 702])
    fake.set_installs(4321, FakeReply.html(503))
    fake.set_status(ASID, 701, status_reply(4, 10))
    fake.set_status(ASID, 702, status_reply(3))
    fake.set_status(ASID, 500, status_reply(4, 50))
    config = service_config(
        database_url,
        fake.base_url,
        sections="[poll]\nspread = 0\n[discovery]\naccount_service_ids = [1234, 4321]\n",
        watches=[(ASID, 500)],
    )
    clock = HandClock()
    async with Service(parse_config(config, {}), clock=clock) as service:
        await service.discover()
        await service.discover()  # already watched: nothing added twice
        await service.tick()
        watches = await list_watches(service.engine)
        events = await recent_events(service.engine, 100)
    by_id = {w.image_version_id: w for w in watches}
    assert sorted(by_id) == [500, 701, 702]
    assert by_id[701].source == "discovered"
    assert by_id[702].source == "discovered"
    assert by_id[500].source == "config"
    assert {(e.image_version_id, e.current.state) for e in events} == {
        (500, "Running"),
        (701, "Running"),
        (702, "Queued"),
    }
    install_requests = [r for r in fake.requests if r.path.endswith("/imageinstall/status")]
    assert len(install_requests) == 4
