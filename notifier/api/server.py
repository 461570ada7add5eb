"""Starting and stopping the HTTP server inside the service's event loop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from notifier.config import ServerSettings

log = logging.getLogger(__name__)


@asynccontextmanager
async def serve(app: web.Application, server: ServerSettings) -> AsyncIterator[str]:
    """Listen on ``server.listen`` until the block ends; yields the base URL (port 0 resolved)."""
    # No access log: request lines can carry tokens in query strings people paste by mistake.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        host = server.host.strip("[]")
        site = web.TCPSite(runner, host, server.port)
        await site.start()
        address = runner.addresses[0]
        port = address[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        if server.admin_token is None:
            log.warning(
                "server.admin_token is not set: the admin API at %sapi/v1 is open to anyone "
                "on this machine, and the server only listens on loopback",
                url,
            )
        log.info("status page at %s", url)
        yield url
    finally:
        await runner.cleanup()
