"""`notifier demo` tells the story in order in about ten seconds; `--keep` keeps the page up."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time

import aiohttp
import pytest

from notifier.demo import WATCHES, Colours, run_demo

LABELS = [label for _, _, label, *_ in WATCHES]
DONE = "every job has finished and been announced; demo done."
TERMINAL = ("Complete", "Failed")


def blocks(output: str) -> list[tuple[str, list[str]]]:
    """(title, body lines) of each printed notification, in print order."""
    found = []
    for chunk in output.split("\n\n"):
        lines = chunk.splitlines()
        if lines and re.match(r"^\[\d\d:\d\d:\d\d\] ", lines[0]):
            found.append((lines[0][11:], [line.removeprefix("    ") for line in lines[1:]]))
    return found


def job_of(title: str, body: list[str]) -> str:
    text = " ".join([title, *body])
    return next(label for label in LABELS if label in text)


async def test_the_demo_tells_the_story_in_order_in_about_ten_seconds_and_keeps_the_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    out = io.StringIO()
    started = time.monotonic()
    demo = asyncio.create_task(run_demo(seconds=20.0, out=out, keep=True))
    while DONE not in out.getvalue():
        assert not demo.done(), out.getvalue()
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    output = out.getvalue()
    assert took < 14, f"the story took {took:.1f} s"
    # Every live message carries its buttons, as Slack shows them once interactivity is on.
    assert "    [ Mute 1 h ]  [ Stop watching ]\n" in output

    printed = blocks(output)
    finished: set[str] = set()
    for title, body in printed:
        job = job_of(title, body)
        if title.startswith("Webhook POST"):
            assert "signature verified" in title
            finished.add(job)
        elif title.endswith("message updated"):
            # Once a webhook said the job finished, Slack never shows it unfinished after.
            state_line = body[2]
            if job in finished:
                assert any(state in state_line for state in TERMINAL), (job, state_line)
            if any(state in state_line for state in TERMINAL):
                assert body[3].startswith("Took: "), body
                assert not any(line.startswith("ETA") for line in body)
        if "thread reply" in title:
            assert f"thread reply on “{job}”" in title
        assert "" not in body, (title, body)
    assert finished == set(LABELS)
    # The failure pages the failing build's owner, once, in its thread reply and its webhook.
    [paged] = [title for title, body in printed if "@U0DEMOPRIYA ❌ Running → Failed" in body[0]]
    assert "thread reply on “US fleet, build 1.4.2”" in paged
    assert output.count("@U0DEMOPRIYA ❌") == 1
    assert "owners: <@U0DEMOPRIYA>" in output
    # Not a terminal here: no colour codes. No admin-token warning in a demo.
    assert "\033[" not in output
    assert not [r for r in caplog.records if "admin_token" in r.getMessage()]

    # --keep: the page stays up after the story.
    page = re.search(r"^status page: (http://127\.0\.0\.1:\d+/)$", output, re.M)
    assert page is not None
    assert f"the status page stays up at {page.group(1)} until Ctrl-C" in output
    await asyncio.sleep(0.5)
    assert not demo.done()
    async with aiohttp.ClientSession() as session, session.get(page.group(1)) as response:
        assert response.status == 200
        assert "Complete" in await response.text()
    demo.cancel()
    with pytest.raises(asyncio.CancelledError):
        await demo


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_on_a_terminal_unless_no_color() -> None:
    assert Colours(_Terminal(), {"TERM": "xterm"}).paint("x", "1") == "\033[1mx\033[0m"
    assert Colours(_Terminal(), {"TERM": "xterm", "NO_COLOR": "1"}).paint("x", "1") == "x"
    assert Colours(io.StringIO(), {"TERM": "xterm"}).paint("x", "1") == "x"
