"""What a silence's end does to the deliveries it held: per Slack channel subscription and watch
one goes out as the live message's update (the job's failure if it failed meanwhile, else the
newest), every other one is never sent, and a silence still holding the watch keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from notifier.core.silences import HeldDelivery, Matchers, Release, Silence, release_held
from notifier.core.status import COMPLETE, FAILED, QUEUED, RUNNING
from notifier.core.subscriptions import SubscriptionKind

NOW = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
SLACK = 1
WEBHOOK = 2
EU = 10
US = 20


def _held(
    delivery_id: int,
    previous: int | None,
    current: int,
    *,
    subscription: int = SLACK,
    kind: SubscriptionKind = "slack_channel",
    watch: int = EU,
) -> HeldDelivery:
    return HeldDelivery(
        id=delivery_id,
        subscription_id=subscription,
        subscription_kind=kind,
        watch_id=watch,
        account_service_id=1234,
        image_version_id=watch * 100,
        label="EU fleet" if watch == EU else "US fleet",
        state_id=current,
        previous_state_id=previous,
    )


def test_the_newest_held_delivery_updates_the_live_message_and_the_rest_are_never_sent() -> None:
    held = [_held(1, None, QUEUED), _held(2, QUEUED, RUNNING), _held(3, RUNNING, COMPLETE)]

    assert release_held(held, [], NOW) == Release(
        resume=(3,), silence=(1, 2), resumed=frozenset({(SLACK, EU)})
    )


def test_a_failure_while_silenced_is_the_one_that_goes_out_even_when_the_job_moved_on() -> None:
    held = [_held(1, RUNNING, FAILED), _held(2, FAILED, QUEUED), _held(3, QUEUED, RUNNING)]

    assert release_held(held, [], NOW).resume == (1,)


def test_the_last_failure_goes_out_when_the_job_failed_twice() -> None:
    held = [_held(1, RUNNING, FAILED), _held(2, FAILED, QUEUED), _held(3, QUEUED, FAILED)]

    release = release_held(held, [], NOW)

    assert (release.resume, release.silence) == ((3,), (1, 2))


def test_an_event_of_a_job_that_had_failed_already_is_not_its_failure() -> None:
    # Failed to Failed (a retry count or error text moving on) is not "the job failed here".
    held = [_held(1, RUNNING, COMPLETE), _held(2, FAILED, FAILED), _held(3, RUNNING, RUNNING)]

    assert release_held(held, [], NOW).resume == (3,)


def test_webhooks_get_nothing_for_held_events() -> None:
    held = [
        _held(1, RUNNING, FAILED, subscription=WEBHOOK, kind="webhook"),
        _held(2, FAILED, QUEUED, subscription=WEBHOOK, kind="webhook"),
        _held(3, None, RUNNING, subscription=3, kind="slack_webhook"),
    ]

    assert release_held(held, [], NOW) == Release(resume=(), silence=(1, 2, 3))


def test_each_channel_and_watch_gets_its_own_one_update() -> None:
    held = [
        _held(4, QUEUED, RUNNING, watch=US),
        _held(1, None, QUEUED),
        _held(3, QUEUED, RUNNING),
        _held(2, None, QUEUED, watch=US),
        _held(5, None, QUEUED, subscription=7),
    ]

    release = release_held(held, [], NOW)

    assert sorted(release.resume) == [3, 4, 5]
    assert sorted(release.silence) == [1, 2]
    assert release.resumed == {(SLACK, EU), (SLACK, US), (7, EU)}


def test_a_silence_still_holding_the_watch_keeps_its_deliveries_held() -> None:
    hour = timedelta(hours=1)
    still = Silence(9, Matchers(label_glob="US*"), NOW - hour, NOW + hour)
    held = [_held(1, None, QUEUED), _held(2, None, QUEUED, watch=US), _held(3, QUEUED, FAILED)]

    release = release_held(held, [still], NOW)

    assert release == Release(resume=(3,), silence=(1,), resumed=frozenset({(SLACK, EU)}))


def test_a_silence_that_ended_holds_nothing() -> None:
    ended = Silence(9, Matchers(label_glob="*"), NOW - timedelta(hours=1), NOW)

    assert release_held([_held(1, None, QUEUED)], [ended], NOW).resume == (1,)


_KINDS: dict[int, SubscriptionKind] = {SLACK: "slack_channel", WEBHOOK: "webhook"}


@st.composite
def _delivery(draw: st.DrawFn) -> HeldDelivery:
    subscription = draw(st.sampled_from(sorted(_KINDS)))
    return _held(
        draw(st.integers(1, 10_000)),
        draw(st.sampled_from([None, QUEUED, RUNNING, FAILED])),
        draw(st.sampled_from([QUEUED, RUNNING, COMPLETE, FAILED])),
        subscription=subscription,
        kind=_KINDS[subscription],
        watch=draw(st.sampled_from([EU, US])),
    )


_deliveries = st.lists(_delivery(), unique_by=lambda d: d.id)


@given(_deliveries)
def test_every_released_delivery_is_resumed_or_silenced_and_one_a_live_message(
    held: list[HeldDelivery],
) -> None:
    release = release_held(held, [], NOW)

    assert sorted([*release.resume, *release.silence]) == sorted(d.id for d in held)
    by_id = {d.id: d for d in held}
    resumed_pairs = [(by_id[i].subscription_id, by_id[i].watch_id) for i in release.resume]
    assert len(resumed_pairs) == len(set(resumed_pairs))
    assert set(resumed_pairs) == release.resumed
    assert all(by_id[i].subscription_kind == "slack_channel" for i in release.resume)
    assert release_held(reversed(held), [], NOW) == release
