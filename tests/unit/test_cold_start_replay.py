"""The cold-start replay (``python -m benchmarks.cold_start``) on a short run:
benchmarks.detection's jobs on a simulated clock, every policy at the same budget. The real
figures live in docs/performance.md."""

from __future__ import annotations

from benchmarks.cold_start import policies, replay, table
from benchmarks.schedule import percentile
from notifier.core.schedule import SchedulePolicy


def test_a_short_cold_start_sees_every_finish_and_the_scheduler_sees_them_soonest() -> None:
    made = policies(SchedulePolicy())
    delays = {name: replay(make, seed=24, minutes=2) for name, make in made.items()}
    finishes = {name: len(result["complete"]) for name, result in delays.items()}
    assert len(set(finishes.values())) == 1
    assert finishes["scheduler"] > 0
    complete = {name: percentile(result["complete"], 0.95) for name, result in delays.items()}
    assert complete["scheduler"] < complete["round-robin, unfinished"]
    assert complete["round-robin, unfinished"] < complete["round-robin, every watch"]
    assert max(delays["oracle (knows every change)"]["all"]) < 1.0
    assert table(2, 1, 0.0, SchedulePolicy()).count("\n| ") == 5
