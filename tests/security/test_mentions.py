"""Mentions page people, so only configuration and verified Slack users may produce one: whatever
upstream writes into a label or a job error, and whatever an API caller sends as an owner, no
message mentions anyone it should not."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from notifier.config import ConfigError, parse_config
from notifier.core.status import FAILED, RUNNING
from notifier.notify.render import (
    WatchInfo,
    render,
    render_live_message,
    render_thread_reply,
    with_mentions,
)
from notifier.notify.render_digest import render_digest
from notifier.notify.samples import sample_digest
from tests.conftest import make_event, make_status
from tests.support.api import HOOK, ApiServer

HOSTILE = "<!channel> <!here> <!everyone> <@U0ATTACKER> <!subteam^S0ALLHANDS> <https://x.example|y>"


def _control_sequences(message_text: str) -> list[str]:
    """Every ``<…>`` Slack would act on: a mention, a link, a date."""
    return re.findall(r"<[^<>]*>", message_text)


def test_upstream_text_in_a_failed_reply_mentions_nobody_but_the_owners() -> None:
    event = replace(
        make_event(make_status(FAILED, 80, error=HOSTILE), make_status(RUNNING, 80), label=HOSTILE),
        owners=("<@U0OWNER01>",),
    )
    reply = render_thread_reply(event, event.owners)
    live = render_live_message(event)
    hook = with_mentions(render(WatchInfo.of(event), event.current, event), event.owners)

    for message in (reply, live, hook):
        everything = message.text + json.dumps(message.blocks)
        found = {s for s in _control_sequences(everything) if not s.startswith("<!date^")}
        assert found <= {"<@U0OWNER01>"}


def test_upstream_text_in_a_digest_mentions_nobody() -> None:
    digest = sample_digest()
    hostile = tuple(replace(i, label=HOSTILE, error=HOSTILE, state=HOSTILE) for i in digest.items)
    message = render_digest(replace(digest, items=hostile), "09:00 Europe/Berlin")

    everything = message.text + json.dumps(message.blocks)
    assert _control_sequences(everything) == []
    assert "&lt;!channel&gt;" in everything


def test_a_digest_setting_cannot_smuggle_markup_into_the_message() -> None:
    with pytest.raises(ConfigError, match="digest"):
        parse_config(
            '[clanforge]\naccess_key = "a"\nsecret_key = "b"\n'
            '[[subscription]]\nname = "x"\nslack_channel = "C1"\n'
            'digest = "09:00 <!channel>"\n',
            {},
        )


@pytest.mark.parametrize(
    "owners",
    [["<!channel>"], ["<!here>"], ["@alice"], ["<@U0OK0001>", "<https://evil.example|x>"]],
)
async def test_the_api_refuses_owners_that_are_no_user_or_group(
    api: ApiServer, owners: list[str]
) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/watches",
        json={"account_service_id": 1, "image_version_id": 2, "owners": owners},
    )
    assert status == 422
    assert body["error"]["message"].startswith("owners")
    _, listing = await api.call("GET", "/api/v1/watches")
    assert listing["items"] == []


async def test_the_api_refuses_channel_wide_mentions_on_a_subscription(api: ApiServer) -> None:
    subscription = {**HOOK, "mention": ["<!channel>"]}
    status, body = await api.call("POST", "/api/v1/subscriptions", json=subscription)
    assert status == 422
    assert "pages every member" in body["error"]["message"]
