"""The status page in a real browser: Debian's chromium driven by Playwright.

A running service watches four image versions in different states (one paused by a 404) and
retries deliveries to a receiver that is down; the test reads the page as a person would
(states, progress bars, ETA, how to resume), follows one watch to its timeline, and saves
screenshots of the list and of a watch at desktop (1280x900) and phone (390x844) sizes under
``test-output/screenshots/`` (or ``$NOTIFIER_TEST_OUTPUT/screenshots/``), asserting that nothing
scrolls sideways at either size.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    HttpCredentials,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from notifier.core.clock import utc_now
from notifier.core.status import COMPLETE, FAILED, QUEUED, RUNNING
from notifier.service import Service
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support.api import ADMIN_TOKEN, make_settings

# The settings set an admin token, so the browser logs in as a person would: HTTP Basic, the
# token as the password.
LOGIN: HttpCredentials = {"username": "ops", "password": ADMIN_TOKEN}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ASID = 1234
EU, US, APAC, GONE = 567890, 567891, 567892, 567899
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
OUTPUT = Path(os.environ.get("NOTIFIER_TEST_OUTPUT", Path(__file__).parents[2] / "test-output"))

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs it)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def status_url(tmp_path: Path) -> AsyncIterator[str]:
    eta = utc_now() + timedelta(minutes=12)
    async with FakeClanforge(access_key="ak", secret_key="sk") as clanforge:
        clanforge.script(
            ASID, EU, [status_reply(QUEUED, 0)] * 2 + [status_reply(RUNNING, 40, eta=eta)]
        )
        clanforge.script(
            ASID,
            US,
            [status_reply(RUNNING, 60)] * 2
            + [status_reply(FAILED, 60, error="Image locked by diffid 42", failed=1)],
        )
        clanforge.set_status(ASID, APAC, status_reply(COMPLETE, 100))
        settings = make_settings(
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"},
            clanforge={"base_url": clanforge.base_url, "access_key": "ak", "secret_key": "sk"},
            poll={"interval_seconds": 0.1, "running_interval_seconds": 0.1},
            watch=[
                {"account_service_id": ASID, "image_version_id": EU, "label": "EU fleet"},
                {"account_service_id": ASID, "image_version_id": US, "label": "US fleet"},
                {"account_service_id": ASID, "image_version_id": APAC, "label": "APAC fleet"},
                # Unknown upstream: a 404 pauses it.
                {"account_service_id": ASID, "image_version_id": GONE, "label": "Gone fleet"},
            ],
            # The receiver below is on this machine: allowed as a studio would allow its own.
            network={"allow_private": ["127.0.0.0/8"]},
            # A receiver that is down: deliveries wait for their next try with a long error.
            subscription=[
                {
                    "name": "ci-webhook-with-a-rather-long-name",
                    "webhook_url": "http://127.0.0.1:9/hooks/clanforge/builds/notifications",
                    "events": ["imageversion.state_changed"],
                }
            ],
        )
        async with Service(settings) as service:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            try:
                assert service.http_url is not None
                await _wait_for_states(
                    service.http_url, ["Running", "Failed", "Complete", "Paused"]
                )
                yield service.http_url
            finally:
                stop.set()
                await task


async def _wait_for_states(url: str, states: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with session.get(url, headers=headers) as response:
                html = await response.text()
            if all(f'data-state="{state}"' in html for state in states):
                return
            await asyncio.sleep(0.05)


async def _no_sideways_scroll(page: Page, width: int) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"{page.url} is {overflow} px wide in a {width} px viewport"


async def test_status_page_shows_the_builds_and_a_timeline(
    browser: Browser, status_url: str
) -> None:
    shots = OUTPUT / "screenshots"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = await browser.new_page(viewport=DESKTOP, http_credentials=LOGIN)
    await page.goto(status_url)

    eu = page.locator("section.watch", has_text="EU fleet")
    await expect(eu.locator(".badge.state")).to_have_text("Running")
    await expect(eu.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "40")
    await expect(eu.locator(".eta")).to_contain_text("ETA in 12 min")

    us = page.locator("section.watch", has_text="US fleet")
    await expect(us.locator(".badge.state")).to_have_text("Failed")
    await expect(us.locator(".error")).to_have_text("Image locked by diffid 42")

    apac = page.locator("section.watch", has_text="APAC fleet")
    await expect(apac.locator(".badge.state")).to_have_text("Complete")
    await expect(apac.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")

    gone = page.locator("section.watch", has_text="Gone fleet")
    await expect(gone.locator(".badge.state")).to_have_text("Paused")
    await expect(gone.locator(".resume")).to_have_text(
        f"resume with notifier watch resume --image-version {GONE} --asid {ASID}"
    )
    await expect(page.locator("table.deliveries td.next-try").first).to_be_visible()
    await _no_sideways_scroll(page, DESKTOP["width"])
    await page.screenshot(path=shots / "list-1280x900.png", full_page=True)

    # The filter is a plain GET form.
    await page.select_option("select#state", "Paused")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("section.watch")).to_have_count(1)
    assert "state=Paused" in page.url
    await page.goto(status_url)

    await eu.get_by_role("link", name="EU fleet").click()
    await expect(page.locator("svg.timeline rect.band")).to_have_count(2)
    bands = await page.locator("svg.timeline rect.band").evaluate_all(
        "rects => rects.map(r => r.dataset.state)"
    )
    assert bands == ["Queued", "Running"]
    await expect(page.locator("ol.legend li")).to_have_count(2)
    watch_url = page.url
    await _no_sideways_scroll(page, DESKTOP["width"])
    await page.screenshot(path=shots / "watch-1280x900.png", full_page=True)

    phone = await browser.new_page(viewport=PHONE, http_credentials=LOGIN)
    await phone.goto(status_url)
    await _no_sideways_scroll(phone, PHONE["width"])
    await phone.screenshot(path=shots / "list-390x844.png", full_page=True)
    await phone.goto(watch_url)
    await _no_sideways_scroll(phone, PHONE["width"])
    # The timeline's states are listed in text of the page's own size, not scaled-down SVG.
    legend = phone.locator("ol.legend li strong").first
    size = await legend.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 14
    await phone.screenshot(path=shots / "watch-390x844.png", full_page=True)

    assert sorted(p.name for p in shots.glob("*.png")) == [
        "list-1280x900.png",
        "list-390x844.png",
        "watch-1280x900.png",
        "watch-390x844.png",
    ]
