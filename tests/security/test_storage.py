"""The SQLite database, its WAL and shared-memory files are readable by the service's user
alone, and so is a directory the service creates for them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from notifier.store.watches import add_watch
from tests.conftest import T0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_wal_and_shm_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual default, which would give 0644 and 0755
    try:
        database = tmp_path / "state" / "nested" / "notifier.db"
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            await upgrade(engine)
            await add_watch(engine, 1234, 567890, "EU", "cli", T0)
            modes = _modes(database, tmp_path / "state")
        finally:
            await engine.dispose()
    finally:
        os.umask(old_umask)
    assert modes == {
        "notifier.db": 0o600,
        "notifier.db-wal": 0o600,
        "notifier.db-shm": 0o600,
        "state": 0o700,
        "nested": 0o700,
    }


def _modes(database: Path, top: Path) -> dict[str, int]:
    """The modes of the database's files (those that exist) and directories, by name."""
    paths = [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")]
    paths += [top, database.parent]
    return {p.name: _mode(p) for p in paths if p.exists()}
