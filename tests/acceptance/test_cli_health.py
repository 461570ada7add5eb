"""`notifier health`, the image's HEALTHCHECK: exit 0 and one line on stdout when the configured
server answers `/healthz` with 200, exit 1 and one line on stderr otherwise."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest
from aiohttp import web

from tests.support import config_files as toml
from tests.support.service_process import run_cli_output, start_run, status_page_url

pytestmark = pytest.mark.slow

TOKEN = "health-admin-token-secret-77"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(tmp_path: Path, server: str) -> Path:
    """A service whose Clanforge is nowhere (nothing is watched), with ``server`` as its
    [server] section."""
    return toml.write_config(
        tmp_path / "notifier.toml",
        toml.database(tmp_path / "notifier.db"),
        toml.clanforge("http://127.0.0.1:9", "ak", "sk"),
        server,
    )


async def health(config: Path, *extra: str) -> tuple[int, str, str]:
    return await run_cli_output(
        config, "health", *extra, env={"NOTIFIER_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    )


async def test_health_of_a_running_service_on_a_wildcard_address(tmp_path: Path) -> None:
    port = free_port()
    server = f'[server]\nlisten = "0.0.0.0:{port}"\nadmin_token = "${{NOTIFIER_ADMIN_TOKEN}}"'
    config = write_config(tmp_path, server)
    proc = await start_run(
        config,
        env={"NOTIFIER_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        await status_page_url(proc)
        code, out, err = await health(config)
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.stderr.read()
        await proc.wait()
    assert (code, out, err) == (0, f"ok: http://127.0.0.1:{port}/healthz answered 200\n", "")


async def test_health_names_a_server_that_answers_otherwise(tmp_path: Path) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/healthz", unavailable)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        config = write_config(tmp_path, f'[server]\nlisten = "127.0.0.1:{port}"')
        code, out, err = await health(config)
    finally:
        await runner.cleanup()
    assert (code, out, err) == (
        1,
        "",
        f"notifier: health: http://127.0.0.1:{port}/healthz answered 503\n",
    )


async def test_health_with_nothing_listening(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f'[server]\nlisten = "127.0.0.1:{port}"')
    code, out, err = await health(config, "--timeout", "2")
    assert (code, out) == (1, "")
    assert err.startswith(f"notifier: health: http://127.0.0.1:{port}/healthz: ")
    assert err.count("\n") == 1


async def test_health_without_a_server_section(tmp_path: Path) -> None:
    code, out, err = await health(write_config(tmp_path, ""))
    assert (code, out, err) == (
        1,
        "",
        "notifier: health: no [server] section, so there is no /healthz\n",
    )
