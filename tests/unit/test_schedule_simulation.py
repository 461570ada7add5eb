"""The scheduling simulation (``python -m benchmarks.schedule``) on a small fleet: every policy
keeps to the budget, and the scheduler keeps its promises in it. Delays are compared only where
the gap is wide; the real figures live in docs/performance.md."""

from __future__ import annotations

from benchmarks.schedule import Fleet, percentile, render, run_fleet

FLEET = Fleet(
    "60 watches, 4 requests/s", watches=60, lanes=20, requests_per_second=4, max_gap_seconds=30
)
HOURS = 0.5
WARM_UP = 1_800.0


def test_a_small_fleet_keeps_the_budget_and_the_bound_and_finishes_are_seen_first() -> None:
    results = dict(run_fleet(FLEET, seed=7, hours=HOURS, warm_up=WARM_UP))
    every = results["round-robin, every watch"]
    unfinished = results["round-robin, unfinished"]
    scheduler = results["scheduler"]
    oracle = results["oracle (knows every change)"]
    budget = FLEET.requests_per_second * HOURS * 3600
    for result in results.values():
        assert 0 < result.requests <= budget
        assert result.delays["all"]
    assert scheduler.requests >= 0.95 * budget
    assert 0 < scheduler.max_gap <= FLEET.max_gap_seconds
    assert max(oracle.delays["all"]) < 1.0
    complete = {
        name: percentile(result.delays["complete"], 0.95) for name, result in results.items()
    }
    assert complete["scheduler"] < complete["round-robin, unfinished"] / 2
    assert percentile(unfinished.delays["all"], 0.95) < percentile(every.delays["all"], 0.95)
    table = render(FLEET, list(results.items()), HOURS)
    assert table.count("\n| ") == 5  # the header and a row per policy
