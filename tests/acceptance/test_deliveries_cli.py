"""`notifier deliveries list|retry` and `notifier subscription list|enable` on a real database
holding a dead delivery, one being sent by another replica, and a disabled subscription."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from notifier.config import load_config
from notifier.core.clock import utc_now
from notifier.core.lease import Lease
from notifier.core.status import QUEUED, RUNNING
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from notifier.store.outbox import SqlOutbox
from notifier.store.outbox_store import Failed
from notifier.store.subscriptions import disable_subscription, sync_config_subscriptions
from notifier.store.watches import add_watch
from tests.conftest import T0, event_ids, make_status, poll_once
from tests.support.cli import run_main

CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[clanforge]
access_key = "ak"
secret_key = "sk"

[[subscription]]
name = "chatops"
webhook_url = "https://chatops.example.com/hooks/clanforge"

[[subscription]]
name = "old-hook"
webhook_url = "https://old.example.com/hook"
"""
REPLICA = "buildhost:4242:9f3c"
REASON = "webhook https://chatops.example.com answered 404: no such hook"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(CONFIG.format(db=tmp_path / "notifier.db"), encoding="utf-8")
    asyncio.run(_fill(path))
    return path


async def _fill(config: Path) -> None:
    """Queued (dead after a 404) and Running (being sent by REPLICA) for subscription chatops;
    old-hook disabled by a 410 and its deliveries dead with it."""
    settings = load_config(config, {})
    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine)
        await sync_config_subscriptions(engine, [s.entry() for s in settings.subscription], T0)
        await add_watch(engine, 1234, 567890, "EU fleet", "cli", T0)
        ids = event_ids()
        await poll_once(engine, {567890: make_status(QUEUED)}, now=T0, ids=ids)
        await poll_once(
            engine, {567890: make_status(RUNNING)}, now=T0 + timedelta(hours=1), ids=ids
        )
        # Deliveries: 1 chatops/Queued, 2 old-hook/Queued, 3 chatops/Running, 4 old-hook/Running.
        later = T0 + timedelta(hours=1)
        first = await SqlOutbox(engine).claim_due(
            Lease("replica-a", later, timedelta(seconds=30)), 10
        )
        assert [d.id for d in first] == [1, 2]
        await SqlOutbox(engine).record_outcomes("replica-a", [Failed(1, REASON, None)])
        await disable_subscription(engine, 2, "webhook https://old.example.com: answered 410 Gone")
        await SqlOutbox(engine).record_outcomes("replica-a", [Failed(2, "answered 410 Gone", None)])
        # Another replica is sending the next one right now (its lease runs for an hour).
        sending = await SqlOutbox(engine).claim_due(
            Lease(REPLICA, utc_now(), timedelta(hours=1)), 10
        )
        assert [d.id for d in sending] == [3]
    finally:
        await engine.dispose()


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    return run_main(capsys, *argv, "--config", str(config))


def test_deliveries_list_shows_subscription_event_attempts_next_error_and_lease_owner(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, config, "deliveries", "list")
    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "SUBSCRIPTION",
        "EVENT",
        "EVENT",
        "ID",
        "IMAGE",
        "VERSION",
        "STATUS",
        "ATTEMPTS",
        "NEXT",
        "LEASED",
        "BY",
        "LAST",
        "ERROR",
    ]
    assert [row.split()[:8] for row in rows] == [
        ["4", "old-hook", "imageversion.state_changed", "evt_0002", "567890", "dead", "0", "-"],
        [
            "3",
            "chatops",
            "imageversion.state_changed",
            "evt_0002",
            "567890",
            "pending",
            "0",
            "due",
        ],
        ["2", "old-hook", "imageversion.state_changed", "evt_0001", "567890", "dead", "1", "-"],
        ["1", "chatops", "imageversion.state_changed", "evt_0001", "567890", "dead", "1", "-"],
    ]
    # Its next attempt (2026-11-28 18:00) has passed: it is due, not "1 min ago".
    assert f"due now  {REPLICA}" in rows[1]
    assert rows[0].endswith(
        "dead     0         -        -                    "
        "subscription disabled: webhook https://old.example.com: answered 410 Gone"
    )
    assert rows[3].endswith(REASON)


def test_deliveries_list_filters_by_status(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, config, "deliveries", "list", "--status", "pending")
    [_, row] = out.splitlines()
    assert row.split()[0] == "3"
    assert REPLICA in row
    _, out, _ = run(capsys, config, "deliveries", "list", "--status", "dead")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["4", "2", "1"]


def test_deliveries_retry_by_id_puts_a_dead_one_back_in_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, config, "deliveries", "retry", "1") == (
        0,
        "1 delivery queued to be sent again\n",
        "",
    )
    _, out, _ = run(capsys, config, "deliveries", "list", "--status", "pending")
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["3", "chatops"],
        ["1", "chatops"],
    ]
    # 3 is being sent by another replica right now, 999 does not exist.
    assert run(capsys, config, "deliveries", "retry", "3", "999") == (
        1,
        "0 deliveries queued to be sent again\n",
        "notifier: not found: 999; being sent right now: 3\n",
    )


def test_deliveries_retry_all_dead(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, config, "deliveries", "retry", "--all-dead") == (
        0,
        "3 deliveries queued to be sent again\n",
        "",
    )
    assert run(capsys, config, "deliveries", "list", "--status", "dead") == (
        0,
        "no deliveries with status dead\n",
        "",
    )


def test_subscription_list_shows_why_a_subscription_is_disabled_and_enable_undoes_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, config, "subscription", "list")
    chatops, old = out.splitlines()[1:]
    assert " active " in chatops
    assert "disabled: webhook https://old.example.com: answered 410 Gone" in old

    assert run(capsys, config, "subscription", "enable", "old-hook") == (
        0,
        "subscription 'old-hook' is enabled; its dead deliveries go out again with "
        "`notifier deliveries retry --all-dead`\n",
        "",
    )
    _, out, _ = run(capsys, config, "subscription", "list")
    assert " active " in out.splitlines()[2]
    assert run(capsys, config, "subscription", "enable", "old-hook") == (
        1,
        "",
        "notifier: subscription 'old-hook' is not disabled\n",
    )
    assert run(capsys, config, "subscription", "enable", "nope") == (
        1,
        "",
        "notifier: no subscription is named 'nope'\n",
    )
