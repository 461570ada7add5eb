"""The budget-aware scheduler: pure decisions over plain data, on a clock the test moves."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core.schedule import (
    History,
    Known,
    Outlook,
    PastChange,
    SchedulePolicy,
    outlook,
    pick,
)
from notifier.core.status import COMPLETE, CREATED, FAILED, PENDING, QUEUED, RUNNING, SQUASHED

POLICY = SchedulePolicy(max_gap_seconds=60)
NOW = 10_000.0


def known(watch_id: int, state: int | None, polled_ago: float = 10.0, **fields: object) -> Known:
    polled = None if state is None else NOW - polled_ago
    base = Known(
        watch_id=watch_id,
        account_service_id=1,
        state_id=state,
        polled_at=polled,
        due_at=NOW - 1,
        state_since=NOW - 600,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def outlooks(*watches: Known, history: History | None = None) -> list[Outlook]:
    history = history or History(POLICY)
    return [outlook(watch, history, POLICY) for watch in watches]


def test_a_job_at_its_eta_goes_before_one_far_from_it_and_before_waiting_jobs() -> None:
    at_eta = known(1, RUNNING, eta=NOW + 5, state_since=NOW - 900, progress=97)
    far = known(2, RUNNING, eta=NOW + 3000, state_since=NOW - 60, progress=2)
    queued = known(3, QUEUED)
    created = known(4, CREATED)
    order = pick(outlooks(far, queued, created, at_eta), NOW, 4, POLICY)
    assert order[0] == 1
    assert pick(outlooks(far, queued, created, at_eta), NOW, 1, POLICY) == [1]


def test_a_job_past_its_eta_and_still_running_is_polled_closely() -> None:
    late = known(1, RUNNING, polled_ago=3, eta=NOW - 600, state_since=NOW - 3600)
    queued = known(2, QUEUED, polled_ago=20)
    assert pick(outlooks(late, queued), NOW, 1, POLICY) == [1]


def test_progress_narrows_the_eta_window() -> None:
    # Upstream's ETA is an hour off either way; the progress says the job ends within a minute.
    eta_only = known(1, RUNNING, eta=NOW + 60, state_since=NOW - 3600)
    with_progress = replace(eta_only, watch_id=2, progress=98, rate_since=NOW - 3610)
    first, second = outlooks(eta_only, with_progress)
    assert second.window_to - second.window_from < first.window_to - first.window_from
    assert second.missed(NOW + 60) > first.missed(NOW + 60)


def test_progress_upstream_measured_seconds_before_the_poll_is_projected_from_then() -> None:
    # 98 % after 980 s seen Running (a point every 10 s), as of upstream's update 8 s before
    # the poll: the last points may be 8 s nearer done than the poll's moment says.
    fresh = known(1, RUNNING, polled_ago=1, progress=98, rate_since=NOW - 981)
    stale = replace(fresh, watch_id=2, updated=NOW - 9)
    from_before_the_run = replace(fresh, watch_id=3, updated=NOW - 5000)
    fresh_outlook, stale_outlook, ignored = outlooks(fresh, stale, from_before_the_run)
    assert stale_outlook.window_from < fresh_outlook.window_from
    assert stale_outlook.missed(NOW + 10) > fresh_outlook.missed(NOW + 10)
    assert replace(ignored, watch_id=1) == fresh_outlook


def test_finished_jobs_cost_nothing_and_failed_ones_only_their_linger() -> None:
    complete = known(1, COMPLETE, due_at=None)
    squashed = known(2, SQUASHED, due_at=None)
    lingering = known(3, FAILED, polled_ago=300, due_at=NOW)
    not_yet = known(4, FAILED, polled_ago=10, due_at=NOW + 290)
    lingered = known(5, FAILED, polled_ago=300, due_at=None)
    queued = known(6, QUEUED, polled_ago=1)
    chosen = pick(
        outlooks(complete, squashed, lingering, not_yet, lingered, queued), NOW, 10, POLICY
    )
    assert chosen == [3, 6]


def test_a_watch_never_polled_goes_first() -> None:
    fresh = known(1, None, due_at=NOW)
    late = known(2, RUNNING, polled_ago=30, eta=NOW - 10)
    assert pick(outlooks(late, fresh), NOW, 1, POLICY) == [1]


def test_history_of_similar_jobs_tells_when_a_job_without_eta_should_end() -> None:
    history = History(POLICY)
    for seconds in (580, 600, 610, 620, 590, 605):
        history.record_run(7, seconds, failed=False)
    no_eta = known(1, RUNNING, state_since=NOW - 590, account_service_id=7)
    unknown_service = replace(no_eta, watch_id=2, account_service_id=8)
    learnt, prior = outlooks(no_eta, unknown_service, history=history)
    assert learnt.missed(NOW) > prior.missed(NOW)
    assert learnt.window_to <= NOW - 590 + 620


def test_learnt_waits_set_how_soon_a_waiting_job_is_looked_at() -> None:
    history = History(POLICY)
    for _ in range(6):
        history.record_wait(7, QUEUED, 30)
        history.record_wait(7, PENDING, 3000)
    quick = known(1, QUEUED, account_service_id=7)
    slow = known(2, PENDING, account_service_id=7)
    assert pick(outlooks(slow, quick, history=history), NOW, 1, POLICY) == [1]


def test_a_job_first_seen_long_into_its_run_gets_a_window_as_wide_as_its_whole_run() -> None:
    # Seen Running a minute ago (a restart), but upstream says it started 15 minutes ago: the
    # ETA's 20 % error is a share of the whole run, not of the minute this process has seen.
    seen_late = known(1, RUNNING, eta=NOW + 100, state_since=NOW - 60)
    with_start = replace(seen_late, watch_id=2, run_started=NOW - 900)
    narrow, wide = outlooks(seen_late, with_start)
    assert wide.window_to - wide.window_from > 3 * (narrow.window_to - narrow.window_from)
    # A finish may already have come (the window opened 100 s ago): it is looked for now.
    assert wide.window_to == NOW + 100 + 0.2 * 1000
    assert wide.missed(NOW) > narrow.missed(NOW)


def test_a_start_upstream_puts_after_the_first_sighting_is_not_believed() -> None:
    # Clocks apart: the job was Running when first seen, so its run began no later than that.
    skewed = known(1, RUNNING, eta=NOW + 100, state_since=NOW - 60, run_started=NOW + 30)
    plain = replace(skewed, watch_id=2, run_started=None)
    assert outlooks(skewed) == [replace(outlooks(plain)[0], watch_id=1)]


def test_waits_seen_in_one_state_set_the_prior_of_states_and_services_not_seen_yet() -> None:
    history = History(POLICY)
    fresh = History(POLICY)
    for _ in range(10):
        history.record_wait(7, QUEUED, 60)
    assert fresh.wait_rate(8, CREATED) == 1 / POLICY.wait_seconds
    # Another state of the same service, and a service never seen: a minute and a bit, not ten.
    assert 1 / history.wait_rate(7, CREATED) < 120
    assert 1 / history.wait_rate(9, PENDING) < 120
    created = known(1, CREATED, account_service_id=9)
    running_far = known(2, RUNNING, eta=NOW + 3000, state_since=NOW - 60, account_service_id=9)
    assert pick(outlooks(running_far, created, history=history), NOW, 1, POLICY) == [1]
    assert pick(outlooks(running_far, created, history=fresh), NOW, 1, POLICY) == [2]


def test_a_restarted_process_knows_from_past_changes_how_long_jobs_wait_and_run() -> None:
    # Seen before the restart: a job Created, Queued 40 s later, Running a minute after that
    # (upstream's start 5 s before it was seen), Complete 10 minutes on; five such jobs.
    past = []
    for n in range(5):
        t, ivid = 1000.0 * n, 100 + n
        past += [
            PastChange(7, ivid, None, CREATED, t),
            PastChange(7, ivid, CREATED, QUEUED, t + 40),
            PastChange(7, ivid, QUEUED, RUNNING, t + 100, run_started=t + 95),
            PastChange(7, ivid, RUNNING, COMPLETE, t + 700, run_started=t + 95),
        ]
    # A change whose previous state the history did not keep teaches nothing.
    past.append(PastChange(7, 999, QUEUED, RUNNING, 9000.0))
    restarted, fresh = History(POLICY), History(POLICY)

    assert restarted.learn_past(past) == 15

    queued = known(1, QUEUED, account_service_id=7)
    running_far = known(2, RUNNING, eta=NOW + 3000, state_since=NOW - 60, account_service_id=7)
    assert pick(outlooks(running_far, queued, history=restarted), NOW, 1, POLICY) == [1]
    assert pick(outlooks(running_far, queued, history=fresh), NOW, 1, POLICY) == [2]
    # Runs counted from upstream's start: 605 s each, however late they were first seen.
    assert restarted.run_fit(7)[:2] == (605.0, 605.0)


@st.composite
def watches(draw: st.DrawFn) -> list[Known]:
    count = draw(st.integers(1, 40))
    result = []
    for watch_id in range(count):
        state = draw(st.sampled_from([None, CREATED, PENDING, QUEUED, RUNNING, RUNNING, FAILED]))
        polled_ago = draw(st.floats(0, 50))
        eta = draw(st.none() | st.floats(-2000, 4000))
        result.append(
            known(
                watch_id,
                state,
                polled_ago=polled_ago,
                due_at=NOW + draw(st.floats(-30, 5)),
                eta=None if eta is None else NOW + eta,
                progress=draw(st.integers(0, 100)),
                rate_since=draw(st.none() | st.just(NOW - 1000)),
                state_since=NOW - polled_ago - draw(st.floats(0, 5000)),
            )
        )
    return result


@settings(max_examples=200, deadline=None)
@given(fleet=watches(), slots=st.integers(0, 12))
def test_never_more_than_the_slots_never_twice_and_only_what_is_due(
    fleet: list[Known], slots: int
) -> None:
    chosen = pick(outlooks(*fleet), NOW, slots, POLICY)
    assert len(chosen) <= slots
    assert len(set(chosen)) == len(chosen)
    due = {w.watch_id for w in fleet if w.due_at is not None and w.due_at <= NOW}
    assert set(chosen) <= due
    assert len(chosen) == min(slots, len(due))  # the whole budget while more is due


@settings(max_examples=200, deadline=None)
@given(fleet=watches(), later=st.floats(0, 3600))
def test_missed_delay_only_grows_until_the_next_poll(fleet: list[Known], later: float) -> None:
    for view in outlooks(*fleet):
        assert view.missed(NOW + later) >= view.missed(NOW) >= 0


@settings(max_examples=40, deadline=None)
@given(
    fleet=watches(),
    per_tick=st.integers(1, 5),
    max_gap=st.floats(20, 120),
)
def test_no_unfinished_watch_waits_longer_than_the_bound_when_the_budget_allows_it(
    fleet: list[Known], per_tick: int, max_gap: float
) -> None:
    policy = SchedulePolicy(max_gap_seconds=max_gap)
    unfinished = [
        replace(w, polled_at=NOW, due_at=NOW + 1)
        for w in fleet
        if w.state_id in (CREATED, PENDING, QUEUED, RUNNING)
    ]
    # Feasible: every watch fits in the ticks the bound leaves, one tick to spare.
    unfinished = unfinished[: per_tick * int(max_gap - 2)]
    history = History(policy)
    views = {w.watch_id: w for w in unfinished}
    polled = {w.watch_id: NOW for w in unfinished}
    worst = 0.0
    now = NOW
    while now < NOW + 4 * max_gap:
        now += 1
        chosen = pick((outlook(w, history, policy) for w in views.values()), now, per_tick, policy)
        for watch_id in chosen:
            worst = max(worst, now - polled[watch_id])
            polled[watch_id] = now
            views[watch_id] = replace(views[watch_id], polled_at=now, due_at=now + 1)
    worst = max([worst, *(now - at for at in polled.values())])
    assert worst <= max_gap


@settings(max_examples=200, deadline=None)
@given(
    polled_ago=st.floats(0.5, 50),  # well inside the gap bound, which would come first
    into_window=st.floats(1, 600),
    far=st.floats(700, 20_000),
    run=st.floats(300, 10_000),
)
def test_of_two_running_jobs_polled_together_the_one_near_its_eta_goes_first(
    polled_ago: float, into_window: float, far: float, run: float
) -> None:
    near_eta = NOW - into_window + 0.2 * run  # its window [eta - 0.2 run, eta + 0.2 run] holds now
    near = known(1, RUNNING, polled_ago=polled_ago, eta=near_eta, state_since=near_eta - run)
    later = known(2, RUNNING, polled_ago=polled_ago, eta=NOW + far, state_since=NOW - 60)
    assert pick(outlooks(later, near), NOW, 1, POLICY) == [1]
