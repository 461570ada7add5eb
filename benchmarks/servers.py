"""The benchmarks' far side, in a process of its own: fake Clanforge, webhook receiver, remote.

Run as ``python -m benchmarks.servers --watches N --asid A``. It prints one JSON line with the
three base URLs, then serves until its standard input closes. Keeping the servers out of the
measured process means the service (or the bare loop) gets its own core's worth of CPU, as it
would against the real Clanforge, and the servers' work never counts against it.

The Clanforge side is :class:`notifier.testing.fake_clanforge.FakeClanforge` (the fakes the tests
use), answering every image version ``1..N`` of account service ``A`` from memory. The receiver
answers 204 at once and notes when each request arrived (``time.monotonic()``, which on Linux is
one clock for every process, so the driver can compare it with its own times).

The control app (``/control/...``) flips job states and reads back what the servers saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from aiohttp import web

from notifier.testing.fake_clanforge import FakeClanforge, status_reply

# The two states a benchmark job moves between; any two non-terminal ones keep it polled.
STATES = (3, 4)


class Servers:
    def __init__(self, watches: int, asid: int, record: bool) -> None:
        self.watches = watches
        self.asid = asid
        self.fake = FakeClanforge(record=record)
        self.record = record
        self.arrivals: list[dict[str, Any]] = []
        self.received = 0
        self._runners: list[web.AppRunner] = []

    def set_all(self, state: int) -> None:
        reply = status_reply(state, 50 if state == 4 else 0, created=1_790_000_000)
        for ivid in range(1, self.watches + 1):
            self.fake.set_status(self.asid, ivid, reply)

    async def start(self) -> dict[str, str]:
        await self.fake.start()
        self.set_all(STATES[0])
        receiver = web.Application()
        receiver.router.add_post("/hook", self._hook)
        control = web.Application()
        control.router.add_post("/control/state", self._state)
        control.router.add_get("/control/first-poll", self._first_poll)
        control.router.add_get("/control/arrivals", self._arrivals)
        control.router.add_post("/control/clear", self._clear)
        control.router.add_get("/control/polls", self._polls)
        control.router.add_get("/control/cpu", self._cpu)
        urls = {"clanforge": self.fake.base_url}
        for name, app, path in (("webhook", receiver, "/hook"), ("control", control, "")):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            host, port = runner.addresses[0][:2]
            urls[name] = f"http://{host}:{port}{path}"
        return urls

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        await self.fake.close()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        at = time.monotonic()
        self.received += 1
        if self.record:
            self.arrivals.append(
                {
                    "at": at,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "body": body.decode(),
                }
            )
        return web.Response(status=204)

    async def _state(self, request: web.Request) -> web.Response:
        state = int(request.query["state"])
        ivid = request.query.get("ivid")
        at = time.monotonic()
        if ivid is None:
            self.set_all(state)
        else:
            reply = status_reply(state, 50 if state == 4 else 0, created=1_790_000_000)
            self.fake.set_status(self.asid, int(ivid), reply)
        return web.json_response({"at": at})

    async def _first_poll(self, request: web.Request) -> web.Response:
        """When the first request for ``ivid`` after ``after`` arrived, or null."""
        path = f"/cfp/v1/imageversion/{int(request.query['ivid'])}/status"
        after = float(request.query["after"])
        times = [r.time for r in self.fake.requests if r.path == path and r.time >= after]
        return web.json_response({"at": min(times) if times else None})

    async def _arrivals(self, request: web.Request) -> web.Response:
        return web.json_response({"received": self.received, "arrivals": self.arrivals})

    async def _polls(self, request: web.Request) -> web.Response:
        """Status requests answered so far, over every watch."""
        total = sum(self.fake.polls(self.asid, ivid) for ivid in range(1, self.watches + 1))
        return web.json_response({"polls": total})

    async def _cpu(self, request: web.Request) -> web.Response:
        """CPU seconds this process has used so far, all its threads."""
        return web.json_response({"seconds": time.process_time()})

    async def _clear(self, request: web.Request) -> web.Response:
        self.fake.requests.clear()
        self.arrivals.clear()
        self.received = 0
        return web.json_response({})


async def _serve(args: argparse.Namespace) -> None:
    servers = Servers(args.watches, args.asid, args.record)
    urls = await servers.start()
    print(json.dumps(urls), flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the driver closes our standard input (or dies, which closes it too).
    await loop.run_in_executor(None, sys.stdin.read)
    await servers.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("--watches", type=int, required=True)
    parser.add_argument("--asid", type=int, default=1000)
    parser.add_argument("--record", action="store_true", help="keep requests for latency runs")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
