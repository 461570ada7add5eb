"""`notifier run` with a [server] section: the status page, API and probes come up with it, and
the admin token never shows in its output."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support import config_files as toml
from tests.support.service_process import start_run, status_page_url

pytestmark = pytest.mark.slow

TOKEN = "run-admin-token-secret-4242"


async def test_run_serves_status_page_api_and_probes(tmp_path: Path) -> None:
    async with FakeClanforge(access_key="ak", secret_key="sk") as fake:
        fake.set_status(1234, 567890, status_reply(4, 40))
        config = toml.write_config(
            tmp_path / "notifier.toml",
            toml.database(tmp_path / "notifier.db"),
            toml.clanforge(fake.base_url, "ak", "sk"),
            toml.table("poll", interval_seconds=0.2),
            toml.table("server", listen="127.0.0.1:0", admin_token="${NOTIFIER_ADMIN_TOKEN}"),
            toml.watches(1234, [567890], lambda _: "EU fleet"),
        )
        proc = await start_run(
            config,
            env={"NOTIFIER_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen = b""
        try:
            url, seen = await status_page_url(proc)
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                while True:
                    async with session.get(url + "api/v1/watches", headers=headers) as response:
                        assert response.status == 200
                        items = (await response.json())["items"]
                    if items and items[0]["status"] is not None:
                        break
                    await asyncio.sleep(0.05)
                assert items[0]["status"]["state"] == "Running"
                async with session.get(url) as response:
                    assert response.status == 401  # a token is set: the page needs it too
                # As a browser logs in: HTTP Basic, the token as the password.
                basic = {"Authorization": aiohttp.encode_basic_auth("ops", TOKEN)}
                async with session.get(url, headers=basic) as response:
                    assert "EU fleet" in await response.text()
                async with session.get(url + "readyz") as response:
                    assert response.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = await proc.stderr.read()
            code = await proc.wait()
        output = (seen + rest).decode()
        assert code == 0, output
        assert TOKEN not in output
