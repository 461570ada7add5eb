"""``notifier demo``: the real service against a simulated Clanforge and Slack, in one process.

Nothing is faked inside the service: the real store (a temporary SQLite file), poller,
detector, dispatcher, Slack client and webhook signer run as in production. Only the far ends
are local: a scripted Clanforge, a Slack Web API and a webhook receiver on 127.0.0.1, whose
traffic is printed as people would read it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook, WebhookVerificationError

from notifier.config import Settings
from notifier.core.clock import utc_now
from notifier.core.status import COMPLETE, CREATED, FAILED, QUEUED, RUNNING
from notifier.notify.blocks_text import blocks_to_text, mrkdwn_to_text
from notifier.service import Service
from notifier.store.outbox import outbox_depth
from notifier.store.watches import list_watches
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import ReceivedRequest, WebhookReceiver

DEMO_CHANNEL = "C0DEMO"
# The demo's own credentials for its own local fakes: not secrets.
DEMO_SECRET = "whsec_ZGVtby1zZWNyZXQtZm9yLXRoZS1ub3RpZmllci1kZW1v"  # noqa: S105
ACCESS_KEY, SECRET_KEY = "demo-access-key", "demo-secret-key"
SLACK_TOKEN = "xoxb-demo"  # noqa: S105 - the fake Slack's own

# Each poll of the simulated Clanforge stands for one simulated minute of a job's life, and the
# jobs start a few polls apart: the story takes about ten seconds, and the Slack channel (paced
# at SLACK_INTERVAL, twenty times Slack's real rate, as the fake Slack allows) keeps up with it,
# so Slack and webhook lines appear in the order things happen.
POLL_SECONDS = 0.4
SLACK_INTERVAL = 0.05
SIMULATED_STEP = timedelta(minutes=1)


def _lifecycle(
    started: datetime, *, fail_with: str | None = None, queued_polls: int = 2, delay: int = 0
) -> list[dict[str, Any]]:
    """Upstream replies for one job, one per poll: Created (``delay`` polls longer for jobs
    created later), Queued, Running (progress up, an ETA), then Complete, or Failed with
    ``fail_with`` at 60%. Times are simulated, a minute a poll, ending about now."""
    steps: list[dict[str, Any]] = []

    def at(step: int) -> datetime:
        return started + step * SIMULATED_STEP

    for _ in range(1 + delay):
        steps.append(status_reply(CREATED, 0, created=started, updated=at(len(steps))))
    for _ in range(queued_polls):
        steps.append(status_reply(QUEUED, 0, created=started, updated=at(len(steps))))
    running_since = at(len(steps))
    eta = running_since + 5 * SIMULATED_STEP
    last_progress = 60 if fail_with else 100
    for progress in range(0, last_progress, 20):
        steps.append(
            status_reply(
                RUNNING,
                progress,
                created=started,
                start=running_since,
                eta=eta,
                updated=at(len(steps)),
            )
        )
    finished = at(len(steps))
    if fail_with:
        steps.append(
            status_reply(
                FAILED,
                60,
                created=started,
                start=running_since,
                eta=eta,
                error=fail_with,
                failed=1,
                updated=finished,
            )
        )
    else:
        steps.append(
            status_reply(
                COMPLETE, 100, created=started, start=running_since, eta=eta, updated=finished
            )
        )
    return steps


# The failing build's owner: its failure's Slack reply mentions them, its webhook names them.
DEMO_OWNER = "<@U0DEMOPRIYA>"

# (account service, image version, label, the error it fails with, Queued polls, start delay)
WATCHES: Sequence[tuple[int, int, str, str | None, int, int]] = (
    (1234, 567890, "EU fleet, build 1.4.2", None, 1, 0),
    (1234, 567891, "US fleet, build 1.4.2", "Image locked by diffid 42", 2, 3),
    (5678, 900001, "APAC fleet, build 1.4.2", None, 2, 6),
)


def _demo_settings(
    database: Path, clanforge_url: str, slack_url: str, hook_url: str, listen: str = "127.0.0.1:0"
) -> Settings:
    return Settings.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{database}"},
            "clanforge": {
                "base_url": clanforge_url,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "timeout_seconds": 5,
                "requests_per_second": 50,
            },
            "poll": {
                "interval_seconds": POLL_SECONDS,
                "running_interval_seconds": POLL_SECONDS,
                "waiting_interval_seconds": POLL_SECONDS,
            },
            "slack": {
                "bot_token": SLACK_TOKEN,
                "base_url": slack_url,
                "channel_interval_seconds": SLACK_INTERVAL,
                # Makes the live messages' buttons (Mute 1 h, Stop watching) appear, as they do
                # once Slack's interactivity is set up.
                "signing_secret": secrets.token_hex(16),
            },
            "delivery": {"interval_seconds": 0.5},
            # The demo's receiver is on this machine, which subscription targets may not reach
            # unless allowed, as a receiver inside a studio's network would be.
            "network": {"allow_private": ["127.0.0.0/8"]},
            # The status page, on a free port of this machine unless told where; the demo prints
            # where. A token of its own closes the admin API, which the demo does not use; the
            # status page stays open to whoever the demo shows it to.
            "server": {
                "listen": listen,
                "admin_token": secrets.token_urlsafe(24),
                "public_status": True,
            },
            "watch": [
                {
                    "account_service_id": asid,
                    "image_version_id": ivid,
                    "label": label,
                    "owners": [DEMO_OWNER] if error else [],
                }
                for asid, ivid, label, error, _, _ in WATCHES
            ],
            "subscription": [
                {
                    "name": "builds",
                    "slack_channel": DEMO_CHANNEL,
                    "events": ["imageversion.state_changed"],
                },
                {
                    "name": "chatops",
                    "webhook_url": hook_url,
                    "webhook_secret": DEMO_SECRET,
                    "events": ["imageversion.completed", "imageversion.failed"],
                },
            ],
        }
    )


class Colours:
    """ANSI colours for a terminal that wants them: none when ``NO_COLOR`` is set (no-color.org)
    or the output is not a terminal."""

    def __init__(self, out: TextIO, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        try:
            terminal = out.isatty()
        except (AttributeError, ValueError):
            terminal = False
        self.enabled = terminal and not env.get("NO_COLOR") and env.get("TERM") != "dumb"

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text


SLACK_COLOUR, HOOK_COLOUR, BAD_COLOUR, DIM = "1;35", "1;36", "1;31", "2"


class _Printer:
    """Prints what reached Slack and the webhook receiver, as it would read there."""

    def __init__(self, slack: FakeSlack, hooks: WebhookReceiver, out: TextIO) -> None:
        self._slack = slack
        self._hooks = hooks
        self._out = out
        self._colours = Colours(out)
        self._slack_seen = 0
        self._hooks_seen = 0
        # A thread reply names the job whose message it sits under, as Slack shows it there.
        self._labels: dict[str, str] = {}

    def flush(self) -> None:
        for call in self._slack.calls[self._slack_seen :]:
            self._slack_seen += 1
            args = call.args
            blocks = args.get("blocks")
            if call.method == "chat.postMessage" and args.get("thread_ts"):
                label = self._labels.get(str(args["thread_ts"]), "?")
                where = f"thread reply on “{label}”" + (
                    " (also sent to channel)" if _truthy(args.get("reply_broadcast")) else ""
                )
            elif call.method == "chat.postMessage":
                where = "new message"
                self._labels[str(call.answer.get("ts"))] = _header(blocks)
            elif call.method == "chat.update":
                where = "message updated"
            else:
                continue
            # The live message as Slack lays it out; thread replies are one line, their text.
            body = (
                blocks_to_text(blocks)
                if isinstance(blocks, list) and not args.get("thread_ts")
                else mrkdwn_to_text(str(args.get("text", "")))
            )
            title = f"Slack #{args.get('channel', '?')} · {where}"
            self._print(self._colours.paint(title, SLACK_COLOUR), body)
        for request in self._hooks.requests[self._hooks_seen :]:
            self._hooks_seen += 1
            payload = request.json if isinstance(request.json, dict) else {}
            data = payload.get("data", {})
            current = data.get("current", {})
            ok = _verifies(request, DEMO_SECRET)
            verified = "signature verified" if ok else "BAD SIGNATURE"
            body = f"{payload.get('type')} · {data.get('label')} · {current.get('state')}"
            if current.get("error"):
                body += f" · error: {current['error']}"
            if data.get("owners"):
                body += f" · owners: {', '.join(data['owners'])}"
            self._print(
                self._colours.paint(
                    f"Webhook POST · {verified}", HOOK_COLOUR if ok else BAD_COLOUR
                ),
                f"{body}\nwebhook-id: {request.headers.get('webhook-id')}",
            )

    def _print(self, title: str, body: str) -> None:
        clock = self._colours.paint(utc_now().strftime("%H:%M:%S"), DIM)
        print(f"\n[{clock}] {title}", file=self._out)
        for line in body.splitlines():
            print(f"    {line}", file=self._out)
        self._out.flush()


def _header(blocks: Any) -> str:
    if isinstance(blocks, list):
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "header":
                return str(block.get("text", {}).get("text", "?"))
    return "?"


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


async def run_demo(
    seconds: float | None = None,
    out: TextIO = sys.stdout,
    *,
    keep: bool = False,
    listen: str | None = None,
) -> int:
    """Run until every job has finished and been announced, ``seconds`` pass, or Ctrl-C; with
    ``keep``, the status page stays up after the story until Ctrl-C (or ``seconds``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The simulated story ends about now: the longest job's polls, a minute each, ago.
    polls = max(
        len(_lifecycle(_ANY_TIME, fail_with=e, queued_polls=q, delay=d)) for *_, e, q, d in WATCHES
    )
    started = utc_now().replace(microsecond=0) - polls * SIMULATED_STEP
    with tempfile.TemporaryDirectory(prefix="notifier-demo-") as tmp:
        async with (
            FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
            FakeSlack(token=SLACK_TOKEN) as slack,
            WebhookReceiver() as hooks,
        ):
            for asid, ivid, _, error, queued, delay in WATCHES:
                clanforge.script(
                    asid,
                    ivid,
                    _lifecycle(started, fail_with=error, queued_polls=queued, delay=delay),
                )
            settings = _demo_settings(
                Path(tmp) / "demo.db",
                clanforge.base_url,
                slack.base_url,
                hooks.url,
                listen or "127.0.0.1:0",
            )
            print(
                "notifier demo: watching 3 image versions on a simulated Clanforge at "
                f"{clanforge.base_url}\nSlack channel #{DEMO_CHANNEL} and a signed chatops webhook "
                "are local too. A poll stands for a minute of the jobs' lives. Ctrl-C stops.",
                file=out,
            )
            printer = _Printer(slack, hooks, out)
            async with Service(settings) as service:
                print(f"status page: {service.http_url}", file=out)
                out.flush()
                running = asyncio.create_task(service.run(stop))
                deadline = None if seconds is None else loop.time() + seconds
                done = False
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                    printer.flush()
                    if not done and await _finished(service.engine):
                        done = True
                        await asyncio.sleep(0.5)
                        printer.flush()
                        print("\nevery job has finished and been announced; demo done.", file=out)
                        if keep:
                            print(
                                f"the status page stays up at {service.http_url} until Ctrl-C",
                                file=out,
                            )
                            out.flush()
                        else:
                            stop.set()
                    if deadline is not None and loop.time() >= deadline:
                        stop.set()
                await running
            printer.flush()
    return 0


_ANY_TIME = datetime(2026, 1, 1, tzinfo=UTC)


async def _finished(engine: AsyncEngine) -> bool:
    """Every job reached a terminal state and the outbox is empty."""
    watches = await list_watches(engine)
    done = all(w.status is not None and w.status.is_terminal for w in watches)
    return done and await outbox_depth(engine) == 0


def _verifies(request: ReceivedRequest, secret: str) -> bool:
    try:
        Webhook(secret).verify(request.body, dict(request.headers))
    except WebhookVerificationError:
        return False
    return True
