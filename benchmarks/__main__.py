"""``python -m benchmarks [--quick] [--out PATH] [--profile DIR] [--postgres URL]``: run every
benchmark, print a table of the figures against their targets, and write them all as JSON.

Everything runs on SQLite, the default deployment. ``--postgres`` runs the poll overhead and the
dispatch throughput again on that PostgreSQL server (the engine for several replicas), each in a
database of its own created and dropped there.

``--quick`` is a smoke run at tiny sizes (seconds, not minutes): it proves the harness works, its
figures mean nothing. The full run takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import make_url

import notifier
from benchmarks.dispatch import run_dispatch
from benchmarks.dispatch_layers import run_dispatch_layers
from benchmarks.floor import run_floor
from benchmarks.layers import run_layers
from benchmarks.live import measure_latency, run_memory
from benchmarks.poll import run_poll
from benchmarks.report import render_table
from notifier.core.clock import utc_now

DEFAULT_OUT = Path("benchmarks/results.json")


@dataclass(frozen=True, slots=True)
class Plan:
    poll_counts: list[int]
    poll_repetitions: int
    memory_counts: list[int]
    transitions: int
    dispatch_count: int
    dispatch_repetitions: int
    layer_fetches: int
    layer_rounds: int
    dispatch_layer_deliveries: int
    dispatch_layer_rounds: int
    floor_watches: int
    floor_replays: int
    concurrency: int


FULL = Plan(
    poll_counts=[1_000, 10_000],
    poll_repetitions=5,
    memory_counts=[10_000, 100_000],
    transitions=200,
    dispatch_count=2_000,
    dispatch_repetitions=3,
    layer_fetches=5_000,
    layer_rounds=6,
    dispatch_layer_deliveries=2_000,
    dispatch_layer_rounds=6,
    floor_watches=10_000,
    floor_replays=5,
    concurrency=8,
)
QUICK = Plan(
    poll_counts=[50, 200],
    poll_repetitions=2,
    memory_counts=[200],
    transitions=6,
    dispatch_count=50,
    dispatch_repetitions=2,
    layer_fetches=100,
    layer_rounds=2,
    dispatch_layer_deliveries=50,
    dispatch_layer_rounds=2,
    floor_watches=200,
    floor_replays=2,
    concurrency=8,
)


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlalchemy": sqlalchemy.__version__,
        "notifier": notifier.__version__,
        "load_average_at_start": [round(x, 2) for x in load],
    }


async def run_all(plan: Plan, profile_dir: Path | None, postgres: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": utc_now().isoformat(timespec="seconds"),
        "machine": machine(),
        "database": "SQLite (sqlite+aiosqlite, WAL), the default deployment",
        "plan": {
            "poll_counts": plan.poll_counts,
            "poll_repetitions": plan.poll_repetitions,
            "memory_counts": plan.memory_counts,
            "transitions": plan.transitions,
            "dispatch_count": plan.dispatch_count,
            "dispatch_repetitions": plan.dispatch_repetitions,
            "layer_fetches": plan.layer_fetches,
            "layer_rounds": plan.layer_rounds,
            "dispatch_layer_deliveries": plan.dispatch_layer_deliveries,
            "dispatch_layer_rounds": plan.dispatch_layer_rounds,
            "floor_watches": plan.floor_watches,
            "floor_replays": plan.floor_replays,
            "concurrency": plan.concurrency,
        },
    }
    step = time.perf_counter()
    results["poll"] = await run_poll(
        plan.poll_counts,
        concurrency=plan.concurrency,
        repetitions=plan.poll_repetitions,
        profile_dir=profile_dir,
    )
    results["layers"] = await run_layers(
        plan.layer_fetches, concurrency=plan.concurrency, rounds=plan.layer_rounds
    )
    results["floor"] = await run_floor(
        plan.floor_watches, concurrency=plan.concurrency, replays=plan.floor_replays
    )
    results["latency"] = await measure_latency(plan.transitions)
    results["dispatch"] = await run_dispatch(
        plan.dispatch_count, concurrency=plan.concurrency, repetitions=plan.dispatch_repetitions
    )
    results["dispatch_layers"] = await run_dispatch_layers(
        plan.dispatch_layer_deliveries,
        concurrency=plan.concurrency,
        rounds=plan.dispatch_layer_rounds,
    )
    results["memory"] = await run_memory(plan.memory_counts, concurrency=plan.concurrency)
    if postgres is not None:
        results["postgres"] = {
            "server": make_url(postgres).render_as_string(hide_password=True),
            "poll": await run_poll(
                plan.poll_counts,
                concurrency=plan.concurrency,
                repetitions=plan.poll_repetitions,
                profile_dir=None,
                postgres=postgres,
            ),
            "dispatch": await run_dispatch(
                plan.dispatch_count,
                concurrency=plan.concurrency,
                repetitions=plan.dispatch_repetitions,
                postgres=postgres,
            ),
        }
    results["seconds"] = round(time.perf_counter() - step, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile one poll tick at the largest N with pyinstrument (pip install pyinstrument)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure poll overhead and dispatch on this PostgreSQL server "
        "(postgresql+asyncpg://user@host:port/database)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run_all(plan, args.profile, args.postgres))
    results["quick"] = args.quick
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render_table(results))
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
