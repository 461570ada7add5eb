"""The results as one table: each figure beside the guard it must keep, where it has one.

The ratios against a bare aiohttp loop (poll overhead, dispatch throughput) are shown without a
target: issue 21 retired those targets, since Clanforge's rate limit and Slack's pace bound the
work in production, not CPU. The guards that stay: flip-to-webhook p99, peak RSS at 100,000
watches, SQL statements per tick constant per batch.
"""

from __future__ import annotations

from typing import Any

from notifier.text_table import format_table

# The guards: (limit, applies at N or None for every N). Figures at other sizes have none.
RSS_TARGET_MB = (150.0, 100_000)
LATENCY_P99_TARGET_MS = 50.0


def _verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return ""
    return "ok" if value <= limit else "MISSED"


def _poll_rows(poll: dict[str, Any], on: str = "") -> list[list[str]]:
    """The rows of one N of the poll benchmark; ``on`` names the database when not SQLite."""
    table: list[list[str]] = []
    n = poll["watches"]
    for scenario in ("unchanged", "changed"):
        figures = poll[scenario]
        table.append(
            [
                f"poll overhead, {scenario}{on}",
                f"{n:,}",
                f"{figures['ratio']:.3f} (service {figures['service_per_second']:,.0f}/s,"
                f" bare {figures['bare_per_second']:,.0f}/s; CPU ratio"
                f" {figures.get('cpu_ratio', float('nan')):.2f})",
                "",
                "",
            ]
        )
    for scenario in ("unchanged", "changed"):
        figures = poll[scenario]
        phases = figures.get("phases_us_per_watch")
        if phases is None:
            continue  # results written before the service timed its batches
        busy = figures["servers_busy"]
        table.append(
            [
                f"tick by phase, {scenario}{on}",
                f"{n:,}",
                ", ".join(f"{name} {us:g}" for name, us in phases.items())
                + f" us a watch (bare loop {figures['bare_us_per_watch']:g} us a fetch;"
                f" servers process busy {busy['bare']:.0%} beside the bare loop,"
                f" {busy['service']:.0%} beside the tick)",
                "",
                "",
            ]
        )
    for scenario in ("unchanged", "changed"):
        db = poll[scenario]["db_per_tick"]
        table.append(
            [
                f"SQL per tick, {scenario}{on}",
                f"{n:,}",
                f"{db['statements']} statements ({db['statements_per_1000_watches']}/1,000"
                f" watches), {db['commits']} commits,"
                f" {db['status_rows_written']} status rows written",
                "constant; 0 status rows" if scenario == "unchanged" else "constant",
                "ok" if scenario == "changed" or db["status_rows_written"] == 0 else "MISSED",
            ]
        )
    return table


def _dispatch_row(dispatch: dict[str, Any], on: str = "") -> list[str]:
    return [
        f"dispatch throughput{on}",
        f"{dispatch['deliveries']:,} deliveries",
        f"{dispatch['ratio']:.3f} (service {dispatch['service_per_second']:,.0f}/s,"
        f" bare {dispatch['bare_per_second']:,.0f}/s)",
        "",
        "",
    ]


def rows(results: dict[str, Any]) -> list[list[str]]:
    table: list[list[str]] = []
    for poll in results["poll"]:
        table += _poll_rows(poll)
    layers = results.get("layers")
    if layers is not None:
        table.append(
            [
                "unchanged poll, CPU per fetch by layer",
                f"{layers['fetches']:,}",
                " -> ".join(f"{us:g}" for us in layers["event_loop_cpu_us"].values())
                + " us (bare loop, client, + accounts, tick)",
                "",
                "",
            ]
        )
    floor = results.get("floor")
    if floor is not None:
        for scenario in ("unchanged", "changed"):
            figures = floor[scenario]
            table.append(
                [
                    f"SQLite floor of the ratio, {scenario}",
                    f"{floor['watches']:,}",
                    f"{figures['floor_of_ratio']:.3f} (the tick's {figures['statements']}"
                    f" statements replayed raw: {figures['replay_us_per_watch']:g} us a watch;"
                    f" bare fetch {figures['bare_us_per_fetch']:g} us; CPU floor"
                    f" {figures['floor_of_cpu_ratio']:.3f})",
                    "",
                    "",
                ]
            )
    latency = results["latency"]
    table.append(
        [
            "flip -> signed webhook, minus wait for poll",
            f"{latency['transitions']} transitions",
            f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms",
            f"p99 <= {LATENCY_P99_TARGET_MS:g} ms",
            _verdict(latency["p99_ms"], LATENCY_P99_TARGET_MS),
        ]
    )
    table.append(_dispatch_row(results["dispatch"]))
    dispatch_layers = results.get("dispatch_layers")
    if dispatch_layers is not None:
        loop = dispatch_layers["event_loop_cpu_us"]
        process = dispatch_layers["process_cpu_us"]
        table.append(
            [
                "dispatch, CPU per delivery by layer",
                f"{dispatch_layers['deliveries']:,}",
                " -> ".join(f"{us:g}" for us in loop.values())
                + f" us (bare POST, our sink, + body, dispatcher; {list(process.values())[-1]:g}"
                " with the SQLite thread)",
                "",
                "",
            ]
        )
    for memory in results["memory"]:
        limit, at = RSS_TARGET_MB
        target = limit if memory["watches"] == at else None
        table.append(
            [
                "peak RSS of notifier run",
                f"{memory['watches']:,}",
                f"{memory['peak_rss_mb']} MB",
                f"<= {limit:g} MB" if target else "",
                _verdict(memory["peak_rss_mb"], target),
            ]
        )
    postgres = results.get("postgres")
    if postgres is not None:
        for poll in postgres["poll"]:
            table += _poll_rows(poll, " (PostgreSQL)")
        table.append(_dispatch_row(postgres["dispatch"], " (PostgreSQL)"))
    return table


def render_table(results: dict[str, Any]) -> str:
    return format_table(["measure", "N", "result", "target", "verdict"], rows(results))
