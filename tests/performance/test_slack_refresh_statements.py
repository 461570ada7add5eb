"""What a progress refresh costs the database: the poller queues (or merges) the Slack live
message's refreshes of a whole tick in one statement, and none when nothing moved. The
behaviour around them is tested in tests/integration/test_slack_progress_refresh.py."""

from __future__ import annotations

from notifier.core.clock import utc_now
from notifier.core.status import RUNNING
from notifier.core.subscriptions import SlackChannelSubscription
from notifier.store.watches import add_watch
from tests.conftest import seed_subscription
from tests.support.live_refresh import (
    ASID,
    CHANNEL,
    IVID,
    LATE,
    Harness,
    harness,
    pending,
    running_message_posted,
)
from tests.support.statements import Statements

__all__ = ["harness"]  # the fixture, from tests/support


async def test_progress_changes_while_a_refresh_is_pending_become_one_update_with_the_newest(
    harness: Harness,
) -> None:
    ts = await running_message_posted(harness)
    writes = Statements(harness.engine)

    for progress in (35, 40, 47):  # three ticks, the dispatcher busy elsewhere meanwhile
        await harness.poll(RUNNING, progress)
    assert await pending(harness.engine, "refresh") == 1
    # One statement per tick queues (or merges) the refresh, whatever the number of watches.
    assert len(writes.inserts_into("deliveries")) == 3

    await harness.drain()
    [update_call] = harness.slack.updates(CHANNEL)
    assert update_call.args["ts"] == ts
    assert "Running 47%" in update_call.args["text"]
    assert harness.slack.thread_replies(ts) == []


async def test_an_unchanged_poll_plans_no_refresh(harness: Harness) -> None:
    await running_message_posted(harness)
    late = await seed_subscription(
        harness.engine, SlackChannelSubscription(id=0, name="late", channel=LATE)
    )
    harness.subscriptions.append(late)
    writes = Statements(harness.engine)

    await harness.poll(RUNNING, 30)  # the same as before

    assert writes.inserts_into("deliveries") == []
    assert await pending(harness.engine, "refresh") == 0
    await harness.drain()
    assert harness.slack.updates(CHANNEL) == []


async def test_a_tick_queues_the_refreshes_of_all_its_watches_in_one_statement(
    harness: Harness,
) -> None:
    ivids = (IVID, IVID + 1, IVID + 2)
    for ivid in ivids[1:]:
        await add_watch(harness.engine, ASID, ivid, f"build {ivid}", "config", utc_now())
    await harness.poll(RUNNING, 30, ivids=ivids)
    await harness.drain()
    writes = Statements(harness.engine)

    await harness.poll(RUNNING, 50, ivids=ivids)

    assert len(writes.inserts_into("deliveries")) == 1
    assert await pending(harness.engine, "refresh") == 3
    await harness.drain()
    updates = harness.slack.updates(CHANNEL)
    assert len(updates) == 3
    assert all("Running 50%" in u.args["text"] for u in updates)
