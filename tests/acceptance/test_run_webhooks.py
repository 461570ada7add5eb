"""`notifier run` end to end for webhook features: every payload of a scripted lifecycle is signed
for both rotation secrets and validates against the published schema; a preset subscription with
filters gets exactly its events, rendered for its chat service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest

from notifier.testing.fake_clanforge import FakeClanforge
from notifier.testing.webhook_receiver import WebhookReceiver
from tests.support import config_files as toml
from tests.support.story import (
    ACCESS_KEY,
    ASID,
    COMPLETES,
    COMPLETING,
    ERROR,
    FAILING,
    FAILS,
    SECRET_KEY,
    WEBHOOK_SECRET,
    start_notifier,
    stop_notifier,
    write_story_config,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NEW_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


@pytest.fixture
async def clanforge() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as fake:
        yield fake


async def test_lifecycle_payloads_are_signed_for_rotation_and_match_the_schema(
    clanforge: FakeClanforge, tmp_path: Path
) -> None:
    clanforge.script(ASID, COMPLETES, COMPLETING)
    clanforge.script(ASID, FAILS, FAILING)
    async with WebhookReceiver() as everything, WebhookReceiver() as discord:
        config = write_story_config(
            tmp_path / "notifier.toml",
            clanforge.base_url,
            tmp_path / "notifier.db",
            toml.tables(
                "subscription",
                [
                    {
                        "name": "everything",
                        "webhook_url": everything.url,
                        "webhook_secret": "${CHATOPS_WEBHOOK_SECRET}",
                        "webhook_secrets": [NEW_SECRET],
                        "events": [
                            "imageversion.state_changed",
                            "imageversion.completed",
                            "imageversion.failed",
                        ],
                    },
                    {
                        "name": "discord",
                        "webhook_url": discord.url,
                        "preset": "discord",
                        "events": ["imageversion.state_changed"],
                        "states": ["Failed", "Complete"],
                        "label_glob": "US*",
                    },
                ],
            ),
        )
        proc = await start_notifier(config)
        try:
            # Per image version: Queued, Running, the end (state_changed) + the terminal event.
            await eventually(lambda: len(everything.requests) >= 8 and len(discord.requests) >= 1)
        finally:
            code, output = await stop_notifier(proc)

    assert code == 0, output
    assert WEBHOOK_SECRET not in output
    schema = json.loads((ROOT / "docs" / "webhook-payload.schema.json").read_text("utf-8"))
    old = everything.verified_payloads(WEBHOOK_SECRET)
    assert old == everything.verified_payloads(NEW_SECRET)
    assert len(old) == len(everything.requests) == 8
    for payload in old:
        jsonschema.validate(payload, schema)
    assert sorted(p["type"] for p in old) == sorted(
        ["imageversion.state_changed"] * 6 + ["imageversion.completed", "imageversion.failed"]
    )

    [request] = discord.requests  # only US, only the move to a wanted state
    assert "webhook-signature" not in request.headers
    body = request.json
    assert body["content"] == "US fleet, build 1.4.2: Running → Failed (40%)"
    assert body["allowed_mentions"] == {"parse": []}
    assert body["embeds"][0]["fields"][3] == {"name": "Error", "value": f"```\n{ERROR}\n```"}
