"""The dispatcher's conversation with the database during a busy pass: outcomes written a batch
per transaction, and claims made only when something new can be due."""

from __future__ import annotations

import aiohttp
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support.clock import HandClock
from tests.support.dispatch import build_dispatcher
from tests.support.outbox import deliveries, queued_for_webhook
from tests.support.statements import Statements


async def statements_of_a_busy_pass(
    engine: AsyncEngine, clock: HandClock, session: aiohttp.ClientSession
) -> list[tuple[str, object]]:
    """Every statement (with its parameters) a four-slot webhook dispatcher sends to send all
    that is due. Outcomes wait for a batch's worth however long it takes: a slow machine must
    not turn the wait for a batch into extra writes."""
    busy = build_dispatcher(engine, clock=clock, session=session, outcome_wait=60.0)
    with Statements(engine) as statements:
        await busy.dispatch_due()
    return statements.sent


def is_claim(statement: str) -> bool:
    """The lease of a claim (on PostgreSQL it comes after the WITH of its picked rows)."""
    return "UPDATE deliveries SET lease_owner" in statement and "RETURNING" in statement


def is_outcome_write(statement: str) -> bool:
    return statement.startswith("UPDATE deliveries") and "delivered_at" in statement


def deliveries_named(parameters: object) -> int:
    """How many deliveries an outcome write records: the rows of an executemany, or the pairs
    of a one-statement write (JSON text on SQLite, an array of ids on PostgreSQL)."""
    if isinstance(parameters, list):
        return len(parameters)
    assert isinstance(parameters, tuple)
    for value in parameters:
        if isinstance(value, list):
            return len(value)
        if isinstance(value, str) and value.startswith("[["):
            return len(orjson.loads(value))
    raise AssertionError(f"no deliveries named in {parameters!r}")


async def test_outcomes_of_a_busy_pass_are_written_a_batch_per_transaction(
    engine: AsyncEngine,
    clock: HandClock,
    session: aiohttp.ClientSession,
    receiver: WebhookReceiver,
) -> None:
    """100 sends with four slots, claimed at once: a write per batch of 32 outcomes while sends
    are queued, then at most one per send still under way when the queue ran dry; not one per
    handful of finished sends. Every delivery is recorded delivered."""
    await queued_for_webhook(engine, clock, receiver, list(range(1, 101)))

    sent = await statements_of_a_busy_pass(engine, clock, session)

    writes = [deliveries_named(p) for q, p in sent if is_outcome_write(q)]
    assert len(receiver.requests) == 100
    assert [d.status for d in await deliveries(engine)] == ["delivered"] * 100
    assert sum(writes) == 100
    assert len(writes) <= 100 // 32 + 4 + 1


async def test_once_a_claim_comes_back_short_running_low_claims_nothing_more(
    engine: AsyncEngine,
    clock: HandClock,
    session: aiohttp.ClientSession,
    receiver: WebhookReceiver,
) -> None:
    """40 sends with four slots: the first claim takes all 40 and so tells the dispatcher that
    nothing else is due. Sends running the queue low then claim nothing; only a committed
    outcome (which may make a key's next delivery due) leads to another claim."""
    await queued_for_webhook(engine, clock, receiver, list(range(1, 41)))

    sent = await statements_of_a_busy_pass(engine, clock, session)

    assert [d.status for d in await deliveries(engine)] == ["delivered"] * 40
    claims = [q for q, _ in sent if is_claim(q)]
    writes = [q for q, _ in sent if is_outcome_write(q)]
    assert 1 + len(writes) >= len(claims) >= 2


async def test_sends_finishing_after_the_last_claim_claim_nothing_until_an_outcome_commits(
    engine: AsyncEngine,
    clock: HandClock,
    session: aiohttp.ClientSession,
    receiver: WebhookReceiver,
) -> None:
    """The last four of 40 sends finish a tenth of a second apart, after the queue has run dry
    and a claim has come back short. A send finishing frees a slot, but nothing new is due
    until its outcome commits: each finish costs one write and the claim after it, not a
    claim of its own besides (seen on a slow CI machine as four claims to two writes)."""
    await queued_for_webhook(engine, clock, receiver, list(range(1, 41)))
    for _ in range(36):
        receiver.respond_next(204)
    for slow in (0.3, 0.4, 0.5, 0.6):
        receiver.respond_next(204, delay=slow)

    sent = await statements_of_a_busy_pass(engine, clock, session)

    assert [d.status for d in await deliveries(engine)] == ["delivered"] * 40
    claims = [q for q, _ in sent if is_claim(q)]
    writes = [q for q, _ in sent if is_outcome_write(q)]
    assert len(writes) >= 2
    assert len(claims) <= 1 + len(writes)
