"""Rows read by what answers a person while a long watch list sits in the database: the status
page, ``/imagewatch list`` and ``status``, and the config sync at start-up each read what they
show or need, counted by replaying their SELECTs (no timing)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.store.tables import Watch
from notifier.store.watches import ConfigWatch, sync_config_watches
from tests.conftest import T0, add_hand_watches
from tests.support.api import ApiServer
from tests.support.rows import count_rows
from tests.support.slash_commands import answer, command_client, command_settings
from tests.support.statements import Statements, rows_selected


async def test_status_page_reads_one_page_of_a_long_watch_list(api: ApiServer) -> None:
    await add_hand_watches(api.engine, range(1, 2001))

    with Statements(api.engine) as sent:
        status, html = await api.call("GET", "/?page=2")

    assert status == 200
    assert html.count('<a class="title" href="/watches/') == 100
    assert await rows_selected(api.engine, sent) <= 100 + 5


async def test_list_and_status_read_the_channels_watches_not_the_whole_watch_list(
    engine: AsyncEngine,
) -> None:
    """Slack gives a slash command three seconds; a studio may watch thousands of versions."""
    await add_hand_watches(engine, range(1, 2001))
    async with command_client(engine, command_settings()) as client:
        await answer(client, "add 1234 567890 EU fleet")
        await answer(client, "add 1234 5")

        with Statements(engine) as sent:
            listed = (await answer(client, "list"))["text"]
            status = (await answer(client, "status 5"))["text"]

    assert listed == (
        "This channel follows:\n"
        "• 567890 (EU fleet): not polled yet\n"
        "• 5 (by hand 5): not polled yet"
    )
    assert status == "• 5 (by hand 5): not polled yet"
    assert await rows_selected(engine, sent) <= 10


async def test_config_sync_reads_only_the_files_watches_not_those_added_at_run_time(
    engine: AsyncEngine,
) -> None:
    """Start-up memory must not grow with the watches added at run time or discovered: the sync
    reading them all took 45 MB of the service's peak at 100,000 watches."""
    await add_hand_watches(engine, range(1, 2001))
    listed = [
        ConfigWatch(account_service_id=1234, image_version_id=5, label="adopted"),
        ConfigWatch(account_service_id=1234, image_version_id=9001, label="new"),
    ]
    # Its reads, replayed once it is done, return the file's watches (each at most twice: as
    # the file's own, and as a key the file lists), never the 2,000 added at run time.
    for _ in ("adopts one and adds one", "finds nothing to do"):
        with Statements(engine) as sent:
            await sync_config_watches(engine, listed, T0)
        assert await rows_selected(engine, sent) <= 2 * len(listed)
    assert await count_rows(engine, Watch) == 2001
