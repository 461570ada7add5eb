"""``notifier demo``: the real service against a simulated Clanforge and Slack, in one process.

Nothing is faked inside the service: the real store (a temporary SQLite file), poller,
detector, dispatcher, Slack client and webhook signer run as in production. Only the far ends
are local: a scripted Clanforge, a Slack Web API and a webhook receiver on 127.0.0.1, whose
traffic is printed as people would read it.
"""

from __future__ import annotations

import asyncio
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

POLL_SECONDS = 0.25


def _lifecycle(
    started: datetime, *, fail_with: str | None = None, queued_polls: int = 3
) -> list[dict[str, Any]]:
    """Upstream replies for one job, one per poll: Created, Queued, Running (progress up, an
    ETA), then Complete, or Failed with ``fail_with`` at 60%."""
    eta = started + timedelta(minutes=12)
    steps = [status_reply(CREATED, 0, created=started)]
    steps += [status_reply(QUEUED, 0, created=started)] * queued_polls
    last_progress = 60 if fail_with else 100
    for progress in range(0, last_progress, 20):
        steps += [status_reply(RUNNING, progress, created=started, start=started, eta=eta)] * 2
    if fail_with:
        steps.append(
            status_reply(
                FAILED, 60, created=started, start=started, eta=eta, error=fail_with, failed=1
            )
        )
    else:
        steps.append(status_reply(COMPLETE, 100, created=started, start=started, eta=eta))
    return steps


WATCHES: Sequence[tuple[int, int, str, str | None, int]] = (
    (1234, 567890, "EU fleet, build 1.4.2", None, 2),
    (1234, 567891, "US fleet, build 1.4.2", "Image locked by diffid 42", 4),
    (5678, 900001, "APAC fleet, build 1.4.2", None, 7),
)


def _demo_settings(database: Path, clanforge_url: str, slack_url: str, hook_url: str) -> Settings:
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
            "poll": {"interval_seconds": POLL_SECONDS, "running_interval_seconds": POLL_SECONDS},
            "slack": {"bot_token": SLACK_TOKEN, "base_url": slack_url},
            "delivery": {"interval_seconds": 0.5},
            # The demo's receiver is on this machine, which subscription targets may not reach
            # unless allowed, as a receiver inside a studio's network would be.
            "network": {"allow_private": ["127.0.0.0/8"]},
            # The status page, on a free port of this machine; the demo prints where.
            "server": {"listen": "127.0.0.1:0"},
            "watch": [
                {"account_service_id": asid, "image_version_id": ivid, "label": label}
                for asid, ivid, label, _, _ in WATCHES
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


class _Printer:
    """Prints what reached Slack and the webhook receiver, as it would read there."""

    def __init__(self, slack: FakeSlack, hooks: WebhookReceiver, out: TextIO) -> None:
        self._slack = slack
        self._hooks = hooks
        self._out = out
        self._slack_seen = 0
        self._hooks_seen = 0

    def flush(self) -> None:
        for call in self._slack.calls[self._slack_seen :]:
            self._slack_seen += 1
            args = call.args
            if call.method == "chat.postMessage" and args.get("thread_ts"):
                where = "thread reply" + (
                    " (also sent to channel)" if _truthy(args.get("reply_broadcast")) else ""
                )
            elif call.method == "chat.postMessage":
                where = "new message"
            elif call.method == "chat.update":
                where = "message updated"
            else:
                continue
            blocks = args.get("blocks")
            # The live message as Slack lays it out; thread replies are one line, their text.
            body = (
                blocks_to_text(blocks)
                if isinstance(blocks, list) and not args.get("thread_ts")
                else mrkdwn_to_text(str(args.get("text", "")))
            )
            self._print(f"Slack #{args.get('channel', '?')} · {where}", body)
        for request in self._hooks.requests[self._hooks_seen :]:
            self._hooks_seen += 1
            payload = request.json if isinstance(request.json, dict) else {}
            data = payload.get("data", {})
            current = data.get("current", {})
            verified = "signature verified" if _verifies(request, DEMO_SECRET) else "BAD SIGNATURE"
            body = f"{payload.get('type')} · {data.get('label')} · {current.get('state')}"
            if current.get("error"):
                body += f" · error: {current['error']}"
            self._print(
                f"Webhook POST · {verified}",
                f"{body}\nwebhook-id: {request.headers.get('webhook-id')}",
            )

    def _print(self, title: str, body: str) -> None:
        clock = datetime.now(UTC).strftime("%H:%M:%S")
        print(f"\n[{clock}] {title}", file=self._out)
        for line in body.splitlines():
            print(f"    {line}", file=self._out)
        self._out.flush()


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


async def run_demo(seconds: float | None = None, out: TextIO = sys.stdout) -> int:
    """Run until every job has finished and been announced, ``seconds`` pass, or Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="notifier-demo-") as tmp:
        async with (
            FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as clanforge,
            FakeSlack(token=SLACK_TOKEN) as slack,
            WebhookReceiver() as hooks,
        ):
            for asid, ivid, _, error, queued in WATCHES:
                clanforge.script(
                    asid, ivid, _lifecycle(started, fail_with=error, queued_polls=queued)
                )
            settings = _demo_settings(
                Path(tmp) / "demo.db", clanforge.base_url, slack.base_url, hooks.url
            )
            print(
                "notifier demo: watching 3 image versions on a simulated Clanforge at "
                f"{clanforge.base_url}\nSlack channel #{DEMO_CHANNEL} and a signed chatops webhook "
                "are local too. Ctrl-C stops.",
                file=out,
            )
            printer = _Printer(slack, hooks, out)
            async with Service(settings) as service:
                print(f"status page: {service.http_url}", file=out)
                out.flush()
                running = asyncio.create_task(service.run(stop))
                deadline = None if seconds is None else loop.time() + seconds
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                    printer.flush()
                    if await _finished(service.engine):
                        await asyncio.sleep(0.5)
                        printer.flush()
                        print("\nevery job has finished and been announced; demo done.", file=out)
                        stop.set()
                    if deadline is not None and loop.time() >= deadline:
                        stop.set()
                await running
            printer.flush()
    return 0


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
