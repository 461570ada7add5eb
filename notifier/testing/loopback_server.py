"""The life cycle the fake servers share: an aiohttp app on a loopback port, opened with
``async with`` and closed with it, so a test or the demo can never leave one listening."""

from __future__ import annotations

from typing import Any, Self

from aiohttp import web


class LoopbackServer:
    """Subclasses list their handlers in :meth:`routes` and read their address from
    :attr:`origin`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._origin: str | None = None

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self.routes())
        return app

    def runner_options(self) -> dict[str, Any]:
        """Extra ``web.AppRunner`` options (a fake with slow answers cancels them at close)."""
        return {}

    @property
    def origin(self) -> str:
        """``http://HOST:PORT`` once started."""
        if self._origin is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use `async with`")
        return self._origin

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, **self.runner_options())
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._origin = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
