"""The benchmark harness runs: `python -m benchmarks --quick` writes a well-formed results file.

Only the shape is checked, never a timing: figures from a smoke run on a shared machine mean
nothing, and the real figures live in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url

from benchmarks.dispatch_layers import DISPATCH_LAYERS
from benchmarks.layers import LAYERS

REPO = Path(__file__).resolve().parents[2]


def quick_run(tmp_path: Path, *options: str, timeout: float) -> tuple[str, dict[str, Any]]:
    """``python -m benchmarks --quick`` with ``options``: what it printed, and its results file.
    It must exit 0."""
    out = tmp_path / "results.json"
    finished = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    results: dict[str, Any] = json.loads(out.read_text())
    return finished.stdout, results


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_benchmark_run_writes_every_figure(tmp_path: Path) -> None:
    printed, results = quick_run(tmp_path, timeout=170)
    assert "poll overhead, unchanged" in printed
    assert "tick by phase, changed" in printed

    assert results["quick"] is True
    assert results["machine"]["cpus"] >= 1
    for poll in results["poll"]:
        for scenario in ("unchanged", "changed"):
            figures = poll[scenario]
            assert figures["ratio"] > 0
            runs = results["plan"]["poll_repetitions"]
            assert len(figures["bare_seconds"]) == len(figures["service_seconds"]) == runs
            assert figures["db_per_tick"]["commits"] >= 1
            # The tick's time by phase, from the service's own batch timings.
            phases = figures["phases_us_per_watch"]
            assert list(phases) == ["claim", "fetch", "plan", "write"]
            assert all(us > 0 for us in phases.values())
            assert figures["bare_us_per_watch"] > 0
            assert all(0 < share < 2 for share in figures["servers_busy"].values())
        # A poll that saw nothing new writes no status row; one where every job moved writes all.
        assert poll["unchanged"]["db_per_tick"]["status_rows_written"] == 0
        assert poll["changed"]["db_per_tick"]["status_rows_written"] == poll["watches"]
    layers = results["layers"]
    assert layers["fetches"] == results["plan"]["layer_fetches"]
    assert list(layers["event_loop_cpu_us"]) == list(LAYERS)
    assert all(us > 0 for us in layers["process_cpu_us"].values())
    assert "CPU per fetch by layer" in printed
    dispatch_layers = results["dispatch_layers"]
    assert dispatch_layers["deliveries"] == results["plan"]["dispatch_layer_deliveries"]
    assert list(dispatch_layers["event_loop_cpu_us"]) == list(DISPATCH_LAYERS)
    assert all(us > 0 for us in dispatch_layers["process_cpu_us"].values())
    assert "CPU per delivery by layer" in printed
    floor = results["floor"]
    assert floor["watches"] == results["plan"]["floor_watches"]
    # The replay is of what the tick really sent: no status row when nothing moved, and every
    # watch's event and delivery when everything did.
    assert "INSERT INTO events" not in floor["unchanged"]["replay_us_by_statement"]
    assert "INSERT INTO events" in floor["changed"]["replay_us_by_statement"]
    assert "INSERT INTO deliveries" in floor["changed"]["replay_us_by_statement"]
    assert floor["changed"]["events"] == floor["watches"]
    for scenario in ("unchanged", "changed"):
        assert floor[scenario]["floor_of_ratio"] > 1
    assert "SQLite floor of the ratio, changed" in printed
    latency = results["latency"]
    assert latency["transitions"] == results["plan"]["transitions"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert results["dispatch"]["deliveries"] == results["plan"]["dispatch_count"]
    assert results["dispatch"]["ratio"] > 0
    assert [m["watches"] for m in results["memory"]] == results["plan"]["memory_counts"]
    assert all(m["peak_rss_mb"] > 0 for m in results["memory"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_quick_benchmark_run_on_postgres_measures_poll_and_dispatch_there_and_leaves_no_database(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    printed, results = quick_run(tmp_path, "--postgres", empty_postgres_url, timeout=230)
    assert "poll overhead, changed (PostgreSQL)" in printed
    assert "dispatch throughput (PostgreSQL)" in printed

    postgres = results["postgres"]
    assert [poll["watches"] for poll in postgres["poll"]] == results["plan"]["poll_counts"]
    for poll in postgres["poll"]:
        assert poll["unchanged"]["db_per_tick"]["status_rows_written"] == 0
        assert poll["changed"]["db_per_tick"]["status_rows_written"] == poll["watches"]
        assert all(us > 0 for us in poll["changed"]["phases_us_per_watch"].values())
    assert postgres["dispatch"]["deliveries"] == results["plan"]["dispatch_count"]
    assert postgres["dispatch"]["ratio"] > 0
    # Each measurement's database was its own, and is gone.
    assert asyncio.run(_databases_named_like(empty_postgres_url, "notifier_bench_%")) == []


async def _databases_named_like(url: str, pattern: str) -> list[str]:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", pattern)
    finally:
        await conn.close()
    return [row["datname"] for row in rows]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_instruction_counts_come_from_callgrind_and_are_refused_without_it(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.instructions", "30"]
    plain = subprocess.run(  # noqa: S603 - our own interpreter and module
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert plain.returncode == 2
    assert plain.stderr.splitlines()[-1] == (
        "error: not running under callgrind (see the command above)"
    )

    # From a scratch folder, so that callgrind's files land there and not in the checkout.
    counted = subprocess.run(  # noqa: S603 - valgrind from the machine, our own module
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", *command],  # noqa: S607
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert counted.returncode == 0, counted.stderr[-3000:]
    lines = counted.stdout.splitlines()
    assert lines[0] == "instructions per fetch, 30 fetches (unchanged poll path, callgrind):"
    second = 1 + len(LAYERS)
    assert lines[second] == (
        "instructions per delivery, 30 deliveries (webhook send path, callgrind):"
    )
    per_fetch = _figures(lines[1:second])
    per_delivery = _figures(lines[second + 1 :])
    assert list(per_fetch) == list(LAYERS)
    assert list(per_delivery) == list(DISPATCH_LAYERS)
    # A request over loopback is hundreds of thousands of instructions; each service adds to it.
    assert all(figure > 100_000 for figure in (*per_fetch.values(), *per_delivery.values()))
    assert per_fetch[LAYERS[3]] > per_fetch[LAYERS[0]]
    assert per_delivery[DISPATCH_LAYERS[3]] > per_delivery[DISPATCH_LAYERS[0]]


def _figures(lines: list[str]) -> dict[str, int]:
    """``  name   123,456`` lines as {name: 123456}."""
    return {
        name.strip(): int(figure.replace(",", ""))
        for name, figure in (line.rsplit(maxsplit=1) for line in lines)
    }
