"""The end-to-end story `notifier run` is tested with: two builds of one account service, one
that completes and one that fails, each going Queued, Running 40 %, then its end; the keys come
from the environment, as an operator keeps them."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from notifier.testing.fake_clanforge import status_reply
from tests.support.config_files import (
    LOOPBACK_NETWORK,
    clanforge,
    database,
    poll_every,
    table,
    watches,
    write_config,
)
from tests.support.service_process import start_run

ACCESS_KEY = "ak-e2e-secret-access"
SECRET_KEY = "sk-e2e-secret-key"
SLACK_TOKEN = "xoxb-e2e-secret-token"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = (ACCESS_KEY, SECRET_KEY, SLACK_TOKEN, WEBHOOK_SECRET, "ZWFrLWUyZS")

ASID = 1234
COMPLETES, FAILS = 567890, 567891
ERROR = "Image locked by diffid 42 <!channel> & `rm -rf`"
STARTED = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
ETA = STARTED + timedelta(minutes=10)
LABELS = {COMPLETES: "EU fleet, build 1.4.2", FAILS: "US fleet, build 1.4.2"}


def lifecycle(final: dict[str, object]) -> list[dict[str, object]]:
    """Queued, Running 40 % with an ETA, then ``final``."""
    return [
        status_reply(3, 0, created=STARTED),
        status_reply(4, 40, created=STARTED, start=STARTED, eta=ETA),
        final,
    ]


COMPLETING = lifecycle(status_reply(5, 100, created=STARTED, start=STARTED, eta=ETA))
FAILING = lifecycle(
    status_reply(6, 40, created=STARTED, start=STARTED, eta=ETA, error=ERROR, failed=1)
)


def write_story_config(path: Path, clanforge_url: str, database_file: Path, *more: str) -> Path:
    """The story's configuration: Clanforge at ``clanforge_url`` with the keys from the
    environment, polls and delivery passes every 0.2 s, both builds watched; ``more`` adds the
    test's own tables (Slack, subscriptions)."""
    return write_config(
        path,
        database(database_file),
        clanforge(
            clanforge_url, "${CLANFORGE_ACCESS_KEY}", "${CLANFORGE_SECRET_KEY}", timeout_seconds=2
        ),
        poll_every(0.2),
        LOOPBACK_NETWORK,
        table("delivery", interval_seconds=0.2),
        watches(ASID, LABELS, LABELS.__getitem__),
        *more,
    )


def run_env() -> dict[str, str]:
    """The environment the story's configuration reads its keys from."""
    return {
        **os.environ,
        "CLANFORGE_ACCESS_KEY": ACCESS_KEY,
        "CLANFORGE_SECRET_KEY": SECRET_KEY,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "CHATOPS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


async def start_notifier(config: Path) -> asyncio.subprocess.Process:
    return await start_run(
        config,
        env=run_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop_notifier(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGTERM unless it has exited already: (exit code, everything it printed)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    return proc.returncode or 0, (out + err).decode()
