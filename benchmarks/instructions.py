"""Instructions per fetch of the unchanged poll path, and per delivery of the webhook send
path, layer by layer, counted by callgrind.

``valgrind --tool=callgrind --instr-atstart=no python -m benchmarks.instructions [N]``, from
the repository's root (callgrind writes its dumps there, ``callgrind.out.<pid>``; the per-layer
ones are removed once read, the one it writes at exit stays). N fetches, then N deliveries.

Wall and CPU time on a shared 2-core VM swing by a factor of two from one minute to the next;
the number of instructions the driver process executes for the same work does not (about 1 %
between runs). This runs the layers of :mod:`benchmarks.layers` (the bare aiohttp loop, our
client, the accounts and rate limiter, the service's tick) once each over N fetches, and those
of :mod:`benchmarks.dispatch_layers` (the bare POST loop, our webhook sink, the body, the
dispatcher) over N deliveries, with callgrind's instrumentation switched on around each layer
alone (``callgrind_control``), and prints instructions per fetch and per delivery. Both threads
of the process count (the SQLite driver's too); the fake Clanforge and the webhook receiver run
natively in their own process. What it cannot see is time spent waiting: a trip to the driver's
thread costs far more wall time than instructions.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.dispatch_layers import dispatch_layer_runs
from benchmarks.harness import LayerRuns
from benchmarks.layers import layer_runs


def _callgrind(*command: str) -> str:
    """Tell this process's callgrind something; returns what it answered."""
    done = subprocess.run(  # noqa: S603 - valgrind's own tool, on our own pid
        ["callgrind_control", *command, str(os.getpid())],  # noqa: S607 - found on PATH
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


async def count_layers(layers: LayerRuns, count: int, out_dir: Path) -> dict[str, int]:
    """Instructions per item of each layer, read from the dump callgrind writes for it."""
    per_item: dict[str, int] = {}
    async with layers(count, 8) as (runs, prepare):
        for position, (name, run) in enumerate(runs.items()):
            if name in prepare:
                await prepare[name]()  # not counted
            _callgrind("--zero")
            _callgrind("--instr=on")
            await run()
            _callgrind("--instr=off")
            _callgrind(f"--dump=layer{position}")
            per_item[name] = _dumped_total(out_dir, f"layer{position}") // count
    return per_item


def _dumped_total(out_dir: Path, hint: str) -> int:
    for dump in sorted(out_dir.glob(f"callgrind.out.{os.getpid()}.*")):
        text = dump.read_text(errors="replace")
        if f"Trigger: dump {hint}\n" in text:
            totals = [line for line in text.splitlines() if line.startswith("totals:")]
            dump.unlink()
            return int(totals[0].split()[1])
    raise RuntimeError(f"no callgrind dump for {hint} in {out_dir}")


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    try:
        # callgrind_control exits 0 either way; it says so when no callgrind runs this pid.
        under_callgrind = "not detected" not in _callgrind("--stat")
    except (OSError, subprocess.CalledProcessError):
        under_callgrind = False
    if not under_callgrind:
        print(__doc__, file=sys.stderr)
        print("error: not running under callgrind (see the command above)", file=sys.stderr)
        return 2
    per_fetch = asyncio.run(count_layers(layer_runs, count, Path.cwd()))
    print(f"instructions per fetch, {count:,} fetches (unchanged poll path, callgrind):")
    for name, instructions in per_fetch.items():
        print(f"  {name:45} {instructions:>9,}")
    per_delivery = asyncio.run(count_layers(dispatch_layer_runs, count, Path.cwd()))
    print(f"instructions per delivery, {count:,} deliveries (webhook send path, callgrind):")
    for name, instructions in per_delivery.items():
        print(f"  {name:45} {instructions:>9,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
