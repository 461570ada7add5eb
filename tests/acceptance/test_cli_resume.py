"""`notifier watch list` shows a paused watch and `notifier watch resume` polls it again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from notifier.cli import main
from notifier.config import parse_config
from notifier.service import Service
from notifier.store.engine import create_engine
from notifier.store.tables import Watch
from notifier.testing.fake_clanforge import FakeClanforge
from tests.conftest import service_config
from tests.support.clock import HandClock


async def pause_by_polling(config: Path, text: str) -> None:
    """One real tick against a Clanforge that does not know the image version: a 404 pauses."""
    async with FakeClanforge() as fake:
        settings = parse_config(text.replace("BASE_URL", fake.base_url), {}, config)
        async with Service(settings, clock=HandClock()) as service:
            await service.tick()


def test_paused_watch_is_listed_as_paused_and_resumed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notifier.toml"
    text = service_config(
        f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}",
        "BASE_URL",
        sections="[poll]\nspread = 0\n",
        watches=[(1234, 567890)],
    )
    asyncio.run(pause_by_polling(config, text))
    # The CLI reads the same database; its Clanforge address is never used.
    config.write_text(text.replace("BASE_URL", "http://127.0.0.1:9"), encoding="utf-8")
    capsys.readouterr()

    assert main(["watch", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "paused: Clanforge answered 404" in listing

    assert main(["watch", "resume", "--image-version", "567890", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "resumed 1 watch(es); they are polled at the next tick\n"

    assert main(["watch", "resume", "--config", str(config)]) == 1
    assert capsys.readouterr().err == "notifier: no paused watch matches\n"


def test_watch_add_takes_its_own_poll_interval_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notifier.toml"
    config.write_text(
        service_config(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}", "http://127.0.0.1:9"),
        encoding="utf-8",
    )
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    base = ["watch", "add", "--asid", "1", "--image-version", "2", "--config", str(config)]
    with pytest.raises(SystemExit) as exited:
        main([*base, "--interval", "0"])
    assert exited.value.code == 2
    assert "--interval: must be more than 0, got '0'" in capsys.readouterr().err
    assert main([*base, "--interval", "5"]) == 0
    capsys.readouterr()

    async def interval() -> float | None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'n.db'}")
        try:
            async with engine.connect() as conn:
                return (await conn.execute(select(Watch.interval_seconds))).scalar_one()
        finally:
            await engine.dispose()

    assert asyncio.run(interval()) == 5
