"""The services a running notifier talks to, all fakes on 127.0.0.1, and what arrived at them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from notifier.testing.fake_clanforge import FakeClanforge
from notifier.testing.fake_slack import FakeSlack
from notifier.testing.webhook_receiver import WebhookReceiver


@dataclass
class Upstream:
    clanforge: FakeClanforge
    slack: FakeSlack
    hooks: WebhookReceiver


@asynccontextmanager
async def upstream_servers(
    access_key: str, secret_key: str, slack_token: str
) -> AsyncIterator[Upstream]:
    """Clanforge taking these keys, Slack taking this bot token, and a webhook receiver."""
    async with (
        FakeClanforge(access_key=access_key, secret_key=secret_key) as clanforge,
        FakeSlack(token=slack_token) as slack,
        WebhookReceiver() as hooks,
    ):
        yield Upstream(clanforge, slack, hooks)


def first_arrivals(hooks: WebhookReceiver, secret: str) -> dict[int, list[tuple[str, str]]]:
    """Per image version, (type, state) of each event the first time its webhook-id arrived:
    at-least-once resends of the same event left out. Every request must verify with
    ``secret``."""
    seen: set[str] = set()
    per_version: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for request, payload in zip(hooks.requests, hooks.verified_payloads(secret), strict=True):
        if request.headers["webhook-id"] in seen:
            continue
        seen.add(request.headers["webhook-id"])
        data = payload["data"]
        per_version[data["image_version_id"]].append((payload["type"], data["current"]["state"]))
    return per_version
