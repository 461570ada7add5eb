"""The service against a misbehaving Clanforge: refused keys, unknown image versions, 5xx bursts,
timeouts, HTML and ``success: false`` bodies. Real fake server, real database, the real poller;
the service clock is moved by hand so back-off never has to be waited out."""

from __future__ import annotations

import pytest

from notifier.config import Settings, parse_config
from notifier.core.events import Event
from notifier.service import Service
from notifier.store.events import recent_events
from notifier.store.watches import list_watches, resume_watches
from notifier.testing.fake_clanforge import FakeClanforge, FakeReply, status_reply
from tests.conftest import service_config
from tests.integration.conftest import hourly_ticks
from tests.support import config_files as toml
from tests.support.clock import HandClock

ASID, OTHER_ASID = 1234, 2222
IVID, IVID2, IVID3 = 567890, 567891, 567892
FAST = hourly_ticks("failure_threshold = 2")


@pytest.fixture
def fake(clanforge: FakeClanforge) -> FakeClanforge:
    return clanforge


async def ticks(service: Service, clock: HandClock, count: int) -> None:
    """``count`` poll ticks, each an hour of service time after the last: every watch is due."""
    for _ in range(count):
        await service.tick()
        clock.advance(3600)


async def events_of(service: Service, image_version_id: int) -> list[Event]:
    return list(reversed(await recent_events(service.engine, 500, image_version_id)))


async def resume_and_poll(
    service: Service, clock: HandClock, count: int, **which: int
) -> tuple[int, list[Event]]:
    """An operator resumes the paused watches (those ``which`` narrows to, or all), then
    ``count`` ticks poll: how many were resumed, and IVID2's events by then."""
    resumed = await resume_watches(service.engine, clock(), **which)
    await ticks(service, clock, count)
    return resumed, await events_of(service, IVID2)


def fast_settings(
    database_url: str, fake: FakeClanforge, watches: list[tuple[int, int]], *accounts: str
) -> Settings:
    """A service polling ``watches`` at ``fake`` every tick, with these other accounts."""
    config = service_config(
        database_url,
        fake.base_url,
        clanforge_extra="".join(accounts),
        sections=FAST,
        watches=watches,
    )
    return parse_config(config, {})


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


FAILED_RECOVERED_RESUMED = [
    "watch.poll_failing",
    "watch.poll_recovered",
    "imageversion.state_changed",
]
"""A paused watch's history once it is resumed: the failure, the recovery, then its job's state."""

BAD_REPLIES = {
    "500 burst": FakeReply.json(500, {"success": False, "error": "Internal"}),
    "timeout": FakeReply(200, b"{}", {"Content-Type": "application/json"}, delay=1.5),
    "HTML body": FakeReply.html(502),
    "success false": FakeReply.json(200, {"success": False, "error": "Database unavailable"}),
}


@pytest.mark.parametrize("kind", list(BAD_REPLIES))
async def test_failing_polls_raise_one_health_event_and_one_recovery_and_no_state_event(
    kind: str, fake: FakeClanforge, database_url: str
) -> None:
    bad = BAD_REPLIES[kind]
    fake.script(ASID, IVID, [status_reply(4, 10), bad, bad, bad, bad, status_reply(4, 20)])
    settings = fast_settings(database_url, fake, [(ASID, IVID)])
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await ticks(service, clock, 7)
        events = await events_of(service, IVID)
    assert types(events) == [
        "imageversion.state_changed",
        "watch.poll_failing",
        "watch.poll_recovered",
    ]
    failing = events[1]
    assert failing.detail["reason"] in ("unavailable", "bad_reply")
    assert failing.detail["consecutive_failures"] == 2
    assert failing.detail["paused"] is False
    assert failing.current.state == "Running"
    assert events[2].detail == {"consecutive_failures": 4}


async def test_refused_credential_pauses_every_watch_of_it_and_says_which(
    fake: FakeClanforge, database_url: str
) -> None:
    fake.set_status(ASID, IVID, status_reply(4, 10))
    fake.set_status(OTHER_ASID, IVID2, status_reply(3))
    fake.set_status(OTHER_ASID, IVID3, status_reply(3))
    settings = fast_settings(
        database_url,
        fake,
        [(ASID, IVID), (OTHER_ASID, IVID2), (OTHER_ASID, IVID3)],
        toml.account("us-fleet", "us-ak-revoked", "us-sk-revoked", [OTHER_ASID]),
    )
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await ticks(service, clock, 4)
        refused = fake.polls(OTHER_ASID, IVID2) + fake.polls(OTHER_ASID, IVID3)
        for ivid in (IVID2, IVID3):
            events = await events_of(service, ivid)
            assert types(events) == ["watch.poll_failing"]
            assert events[0].detail["reason"] == "credentials_rejected"
            assert events[0].detail["credential"] == "us-fleet"
            assert events[0].detail["paused"] is True
            assert "us-sk-revoked" not in events[0].detail["message"]
        # The other credential's watch goes on as before.
        assert types(await events_of(service, IVID)) == ["imageversion.state_changed"]
        watches = {w.image_version_id: w for w in await list_watches(service.engine)}
        assert watches[IVID2].paused_reason is not None
        assert watches[IVID2].next_poll_at is None
        assert watches[IVID].paused_reason is None
    # Paused: nobody asks upstream again with keys it refused, however many ticks pass.
    assert refused <= 2

    # The keys are fixed in the configuration and the service restarted; then an operator
    # resumes the paused watches.
    fake.add_credentials("us-ak-revoked", "us-sk-revoked", [OTHER_ASID])
    async with Service(settings, clock=clock) as service:
        await ticks(service, clock, 2)
        assert types(await events_of(service, IVID2)) == ["watch.poll_failing"]
        resumed, events = await resume_and_poll(service, clock, 2)
        assert resumed == 2
    assert types(events) == FAILED_RECOVERED_RESUMED


async def test_access_denied_to_an_account_service_pauses_its_watches(
    fake: FakeClanforge, database_url: str
) -> None:
    fake.add_credentials("eu-ak", "eu-sk", [ASID])  # may see 1234 only
    fake.set_status(OTHER_ASID, IVID2, status_reply(3))
    settings = fast_settings(
        database_url,
        fake,
        [(OTHER_ASID, IVID2)],
        toml.account("eu", "eu-ak", "eu-sk", [OTHER_ASID]),
    )
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await ticks(service, clock, 3)
        events = await events_of(service, IVID2)
        assert types(events) == ["watch.poll_failing"]
        assert events[0].detail["reason"] == "access_denied"
        assert events[0].detail["credential"] == "eu"
        assert fake.polls(OTHER_ASID, IVID2) == 1
        # Access is granted upstream, and the watch resumed: recovered once, then its state.
        fake.add_credentials("eu-ak", "eu-sk", [ASID, OTHER_ASID])
        _, events = await resume_and_poll(service, clock, 3, account_service_id=OTHER_ASID)
    assert types(events) == FAILED_RECOVERED_RESUMED


async def test_unknown_image_version_pauses_that_watch_only(
    fake: FakeClanforge, database_url: str
) -> None:
    fake.set_status(ASID, IVID, status_reply(4, 10))
    settings = fast_settings(database_url, fake, [(ASID, IVID), (ASID, IVID2)])
    clock = HandClock()
    async with Service(settings, clock=clock) as service:
        await ticks(service, clock, 4)
        missing = await events_of(service, IVID2)
        known = await events_of(service, IVID)
        assert types(missing) == ["watch.poll_failing"]
        assert missing[0].detail["reason"] == "not_found"
        assert missing[0].detail["paused"] is True
        assert fake.polls(ASID, IVID2) == 1
        assert fake.polls(ASID, IVID) == 4
        assert types(known) == ["imageversion.state_changed"]
        # The image version was created after all (a typo fixed upstream): resume, recover once.
        fake.set_status(ASID, IVID2, status_reply(2))
        _, missing = await resume_and_poll(service, clock, 3, image_version_id=IVID2)
    assert types(missing) == FAILED_RECOVERED_RESUMED
    assert missing[1].detail == {"consecutive_failures": 1}
