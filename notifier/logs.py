"""Log output: readable text for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from notifier.core.secret_scrub import Scrubber

# Libraries that would log request details (headers carry credentials) at DEBUG; aiosqlite logs
# every statement with its parameters, an API webhook's signing secret among them.
QUIET_LOGGERS = (
    "aiohttp.access",
    "slack_sdk",
    "apscheduler",
    "sqlalchemy.engine",
    "alembic",
    "aiosqlite",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ScrubbingFormatter(logging.Formatter):
    """Any formatter's output with every piece of the configured secrets masked: the last line of
    defence for a message (or a traceback) that quotes what it should not."""

    def __init__(self, inner: logging.Formatter, scrubber: Scrubber) -> None:
        super().__init__()
        self._inner = inner
        self._scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        return self._scrubber.scrub(self._inner.format(record))


def configure_logging(
    level: str = "INFO", fmt: Literal["text", "json"] = "text", secrets: Iterable[str] = ()
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )
    scrubber = Scrubber(secrets)
    handler.setFormatter(ScrubbingFormatter(formatter, scrubber) if scrubber else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries(root.level)
    # APScheduler logs every run at INFO; its skipped-run warnings still come through.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


def quiet_libraries(level: int) -> None:
    """Keep :data:`QUIET_LOGGERS` at WARNING or above whatever ``level`` the operator chose."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
