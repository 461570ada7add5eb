"""`notifier demo` serves the status page and says where."""

from __future__ import annotations

import asyncio
import io
import re

import aiohttp

from notifier.demo import run_demo


async def test_demo_prints_the_status_page_address_and_serves_it() -> None:
    out = io.StringIO()
    demo = asyncio.create_task(run_demo(seconds=3.0, out=out))
    while not (
        found := re.search(r"^status page: (http://127\.0\.0\.1:\d+/)$", out.getvalue(), re.M)
    ):
        assert not demo.done(), out.getvalue()
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session, session.get(found.group(1)) as response:
        assert response.status == 200
        assert "EU fleet, build 1.4.2" in await response.text()
    assert await demo == 0
