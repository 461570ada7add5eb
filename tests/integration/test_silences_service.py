"""The whole service with a silence: ``notifier run``'s parts in one process against fake
Clanforge and Slack. Its own ticks hold the events, show the mute, and release it once it ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from notifier.core.clock import utc_now
from notifier.core.live_messages import LiveMessage, LiveMessageKey
from notifier.core.silences import Matchers, NewSilence
from notifier.core.status import FAILED, RUNNING
from notifier.store.live_messages import DatabaseLiveMessages
from notifier.store.silences import add_silence, expire_silence
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from notifier.testing.fake_slack import FAKE_TOKEN, FakeSlack
from tests.support.running import quick_service_settings, running_service
from tests.support.waiting import eventually

ASID, IVID, CHANNEL = 1234, 567890, "C0BUILDS"


async def test_the_service_holds_a_muted_job_and_brings_its_message_up_to_date_once(
    database_url: str,
) -> None:
    async with (
        FakeClanforge(access_key="ak", secret_key="sk") as clanforge,
        FakeSlack(channels={CHANNEL}) as slack,
    ):
        clanforge.set_status(ASID, IVID, status_reply(RUNNING, 30))
        settings = quick_service_settings(
            database_url,
            clanforge,
            (ASID, IVID, "EU"),
            slack={
                "bot_token": FAKE_TOKEN,
                "base_url": slack.base_url,
                "signing_secret": "s3cret",
                "channel_interval_seconds": 0,
            },
            server={"listen": "127.0.0.1:0", "public_url": "https://notifier.example.com/"},
            subscription=[{"name": "builds", "slack_channel": CHANNEL}],
        )
        async with running_service(settings) as service:
            await eventually(lambda: len(slack.top_level_posts(CHANNEL)) == 1)
            [post] = slack.top_level_posts(CHANNEL)
            [actions] = [b for b in post.args["blocks"] if b["type"] == "actions"]
            assert actions["elements"][-1]["url"] == "https://notifier.example.com/watches/1"

            # A mute shows on a message whose ts is stored: wait for the post to be recorded.
            live = DatabaseLiveMessages(service.engine, lambda: utc_now())
            async with asyncio.timeout(10):
                while True:
                    if isinstance(await live.get(LiveMessageKey(1, ASID, IVID)), LiveMessage):
                        break
                    await asyncio.sleep(0.05)
            silence = await add_silence(
                service.engine,
                NewSilence(
                    Matchers(image_version_id=IVID),
                    ends_at=utc_now() + timedelta(hours=1),
                    reason="",
                    created_by="ana",
                ),
                source="cli",
                now=utc_now(),
            )
            await eventually(
                lambda: any("muted until" in u.args["text"] for u in slack.updates(CHANNEL))
            )
            calls = len(slack.calls)
            clanforge.set_status(ASID, IVID, status_reply(FAILED, 80, error="locked"))
            await asyncio.sleep(1.5)  # several ticks: the failure is seen and held
            assert len(slack.calls) == calls

            await expire_silence(service.engine, silence.id, utc_now(), "ana")
            await eventually(lambda: len(slack.calls) >= calls + 2)
            await asyncio.sleep(0.5)  # nothing more comes after the one update and reply
            update, reply = slack.calls[calls:]
            assert (update.method, "Failed 80%" in update.args["text"]) == (
                "chat.update",
                True,
            )
            assert reply.args["text"].startswith("Failed while muted")
