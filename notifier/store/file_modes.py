"""The SQLite file holds webhook targets, upstream errors and the whole history: only the
service's user may read it.

SQLite creates the ``-wal`` and ``-shm`` files with the database file's own permissions, so
creating the database file 0600 before SQLite opens it covers all three; a directory the service
creates for it is 0700. Files that already exist keep the mode their owner chose.
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def prepare_sqlite_file(database: str) -> None:
    """Create ``database``'s missing directories (0700) and the empty file itself (0600)."""
    path = Path(database)
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for directory in missing:
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
