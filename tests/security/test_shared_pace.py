"""The shared rate limits in the database: who can read the ``pace`` table learns no credential,
and a channel name of any length (subscriptions come from the API and /imagewatch) neither
breaks the pacing nor reaches the table whole."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.clanforge.accounts import open_clanforge_accounts
from notifier.config import parse_config
from notifier.notify.pacing import ChannelPacer
from notifier.store.pacing import SqlPaceLedger
from notifier.store.tables import PACE
from notifier.testing.fake_clanforge import FakeClanforge, status_reply

ACCESS_KEY, SECRET_KEY = "AKIA-pace-access-key", "pace-secret-key-0123"


async def _rows(engine: AsyncEngine) -> list[tuple[str, float]]:
    async with engine.connect() as conn:
        return [(row.key, row.next_at) for row in await conn.execute(select(PACE))]


async def test_the_pace_table_holds_no_credential(engine: AsyncEngine) -> None:
    async with FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as fake:
        fake.set_status(1234, 1, status_reply(4, 10))
        settings = parse_config(
            f'[clanforge]\nbase_url = "{fake.base_url}"\naccess_key = "{ACCESS_KEY}"\n'
            f'secret_key = "{SECRET_KEY}"\n',
            {},
        )
        async with open_clanforge_accounts(
            settings.clanforge.options(), SqlPaceLedger(engine)
        ) as accounts:
            await accounts.fetch_status(1234, 1)
    [(key, _)] = await _rows(engine)
    assert key.startswith("clanforge:")
    assert ACCESS_KEY not in key
    assert SECRET_KEY not in key
    assert ACCESS_KEY[:8] not in key


async def test_a_channel_name_longer_than_the_key_column_is_paced_under_a_digest(
    engine: AsyncEngine,
) -> None:
    pacer = ChannelPacer(1.0, ledger=SqlPaceLedger(engine), clock=lambda: 1000.0)
    long_name = "C" + "x" * 5000
    await pacer.wait_turn(long_name)
    await pacer.back_off(long_name, 30)
    [(key, next_at)] = await _rows(engine)
    assert len(key) <= 200
    assert next_at == 1030.0
