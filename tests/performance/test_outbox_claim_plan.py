"""How much of the outbox a PostgreSQL delivery claim reads, whatever its statistics say.

PostgreSQL plans from what the last ANALYZE saw, and in a quiet outbox that is no pending
delivery at all: autoanalyze does not run again for a burst of a few thousand rows in a long
history. The claim must stay linear in the pending deliveries then, and must not walk the
delivered history once the statistics are fresh. Rows are counted by EXPLAIN ANALYZE, not
timed. (SQLite keeps no statistics unless asked, and its plan does not change.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.core.lease import Lease
from notifier.store.codec import status_to_json
from notifier.store.outbox import SqlOutbox
from tests.conftest import T0, make_status
from tests.support.statements import Statements

pytestmark = pytest.mark.postgres

WATCHES = 500
DELIVERED = 20_000
PENDING = 1_000  # two per watch: half of them wait behind the head of their key
LIMIT = 100


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: conftest's ``engine`` migrates it."""
    return postgres_url


HISTORY = (
    """INSERT INTO subscriptions (id, name, kind, target, filters, active, source, created_at)
       VALUES (1, 'chatops', 'webhook', 'http://127.0.0.1:9/hook', '{}', true, 'config', $1)""",
    """INSERT INTO watches (id, account_service_id, image_version_id, label, source, active,
                           poll_errors, created_at)
       SELECT g, 1234, g, 'w' || g, 'cli', true, 0, $1 FROM generate_series(1, $2::int) g""",
    """INSERT INTO events (id, watch_id, type, account_service_id, image_version_id, label,
                          current, occurred_at)
       SELECT 'evt_' || g, 1 + g % $2::int, 'imageversion.state_changed', 1234,
              1 + g % $2::int, 'w', $4::json, $1
       FROM generate_series(1, $3::int) g""",
    """INSERT INTO deliveries (id, event_id, subscription_id, watch_id, status, attempts,
                              next_attempt_at, created_at, delivered_at, kind)
       SELECT g, 'evt_' || g, 1, 1 + g % $2::int, 'delivered', 1, $1, $1, $1, 'event'
       FROM generate_series(1, $3::int) g""",
)
BURST = """INSERT INTO deliveries (id, event_id, subscription_id, watch_id, status, attempts,
                                  next_attempt_at, created_at, kind)
           SELECT g, 'evt_' || g, 1, 1 + g % $2::int, 'pending', 0, $1, $1, 'event'
           FROM generate_series($3::int, $4::int) g"""


async def fill_outbox(engine: AsyncEngine, *, analyze_before_the_burst: bool) -> None:
    """A long delivered history, then a burst of pending deliveries: analyzed before the
    burst (stale statistics, as in production) or after it (fresh)."""
    subscription, watches, events, delivered = HISTORY
    queued = orjson.dumps(status_to_json(make_status(3))).decode()
    async with engine.begin() as conn:
        await conn.exec_driver_sql(subscription, (T0,))
        await conn.exec_driver_sql(watches, (T0, WATCHES))
        await conn.exec_driver_sql(events, (T0, WATCHES, DELIVERED + PENDING, queued))
        await conn.exec_driver_sql(delivered, (T0, WATCHES, DELIVERED))
    if analyze_before_the_burst:
        await analyze(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(BURST, (T0, WATCHES, DELIVERED + 1, DELIVERED + PENDING))
    if not analyze_before_the_burst:
        await analyze(engine)


async def analyze(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("ANALYZE deliveries")


def rows_read(plan: dict[str, Any]) -> int:
    """Rows every node of the plan produced or threw away, over all its loops."""
    seen = sum(
        plan.get(key, 0)
        for key in (
            "Actual Rows",
            "Rows Removed by Filter",
            "Rows Removed by Join Filter",
            "Rows Removed by Index Recheck",
        )
    )
    return int(seen * plan.get("Actual Loops", 1)) + sum(
        rows_read(child) for child in plan.get("Plans", [])
    )


@pytest.fixture
def claim_statement(engine: AsyncEngine) -> Iterator[Statements]:
    """What the engine is sent during the test: its last lease statement is the claim's."""
    with Statements(engine) as statements:
        yield statements


def is_claim(statement: str) -> bool:
    return "lease_owner" in statement and "RETURNING" in statement


async def rows_read_by_the_claim(engine: AsyncEngine, statements: Statements) -> int:
    sql, parameters = statements.last(is_claim)
    async with engine.connect() as conn:
        explained = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", parameters)
        [[document]] = explained.all()
        await conn.rollback()
    [top] = orjson.loads(document) if isinstance(document, str) else document
    return rows_read(top["Plan"])


@pytest.mark.parametrize("statistics", ["stale", "fresh"])
async def test_a_claim_reads_the_pending_deliveries_not_their_square_nor_the_history(
    engine: AsyncEngine, claim_statement: Statements, statistics: str
) -> None:
    await fill_outbox(engine, analyze_before_the_burst=statistics == "stale")

    claimed = await SqlOutbox(engine).claim_due(
        Lease("replica-a", T0 + timedelta(seconds=1), timedelta(minutes=1)), LIMIT
    )

    # The oldest heads of their keys: the first pending delivery of each watch, in id order.
    assert [d.id for d in claimed] == list(range(DELIVERED + 1, DELIVERED + 1 + LIMIT))
    # Each pending delivery passes a few plan nodes once (scan, sort, group into heads), each
    # claimed one a few more: well under the history, nowhere near PENDING squared (500,000
    # rows when each candidate read every pending delivery).
    read = await rows_read_by_the_claim(engine, claim_statement)
    assert read <= 4 * PENDING + 10 * LIMIT, read
