"""A local Slack Web API, so tests and the demo drive the real ``AsyncWebClient`` over real HTTP.

Patching the client would test our guess of what slack-sdk sends; this fake sees the actual
requests (JSON bodies for chat.*, query or form parameters for others) and answers in Slack's
wire format, including its failure modes: ``ok: false`` errors at HTTP 200, HTTP 429 with
``Retry-After``, and messages that were deleted under the notifier's feet.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from notifier.testing.loopback_server import LoopbackServer

SECTION_TEXT_LIMIT: Final = 3000
HEADER_TEXT_LIMIT: Final = 150
MAX_BLOCKS: Final = 50
MAX_TEXT: Final = 40_000
HOOK_METHOD: Final = "incoming-webhook"
"""The name ``fail_next`` takes to script a failure of the incoming-webhook endpoint."""
FAKE_TOKEN: Final = "xoxb-test"  # noqa: S105 - a fixed token a fake server accepts, not a secret


@dataclass(frozen=True, slots=True)
class SlackCall:
    """One request the fake received; ``error`` is what it answered when it was not ok."""

    method: str
    args: dict[str, Any]
    at: float
    """``time.monotonic()`` at arrival, for latency assertions."""
    answer: dict[str, Any] = field(default_factory=dict)
    """What the fake answered, e.g. the ``ts`` of a new message."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Fault:
    error: str
    status: int
    retry_after: float | None


@dataclass(slots=True)
class StoredMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    edits: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class FakeSlack(LoopbackServer):
    """``async with FakeSlack(token="xoxb-test") as fake:``, then a client at ``fake.base_url``.

    ``channels``, when given, is the set of channel ids that exist; others answer
    ``channel_not_found`` as Slack does for a wrong id or a private channel the bot cannot see.
    """

    def __init__(
        self,
        token: str = FAKE_TOKEN,
        *,
        channels: set[str] | frozenset[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        post_interval_seconds: float | None = None,
    ) -> None:
        """``post_interval_seconds``: answer a chat.postMessage to a channel with HTTP 429 and
        ``Retry-After`` when it comes sooner than this after that channel's last accepted one
        (Slack's "about one message per second per channel"). ``rate_limited`` counts those."""
        super().__init__(host, port)
        self.token = token
        self.post_interval_seconds = post_interval_seconds
        self.rate_limited = 0
        self._last_post_at: dict[str, float] = {}
        self.channels = frozenset(channels) if channels is not None else None
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], StoredMessage] = {}
        self.hook_posts: list[dict[str, Any]] = []
        """What incoming-webhook URLs received, with ``path`` (the part after /services/)."""
        self._faults: dict[str, deque[_Fault]] = {}
        self._ts_origin = int(time.time()) * 1_000_000
        self._ts_counter = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``; the trailing slash matters to slack-sdk's URL join."""
        return f"{self.origin}/api/"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.route("*", "/api/{method}", self._handle),
            web.post("/services/{path:.+}", self._handle_hook),
        ]

    # -- scripting ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next call of ``method`` fail; queued per method, used up one call each.

        ``status`` defaults to 429 for ``ratelimited`` and to Slack's usual 200 otherwise.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        self._faults.setdefault(method, deque()).append(_Fault(error, status, retry_after))

    def add_message(self, message: StoredMessage) -> None:
        """As if this message had been posted earlier (by a process that then died)."""
        self.messages[(message.channel, message.ts)] = message

    def next_ts(self) -> str:
        return self._next_ts()

    def delete_message(self, channel: str, ts: str) -> None:
        """As if someone deleted the message: chat.update then answers ``message_not_found``."""
        del self.messages[(channel, ts)]

    # -- inspection ---------------------------------------------------------------------------

    def posts(self, channel: str | None = None) -> list[SlackCall]:
        """Successful chat.postMessage calls, top-level and thread replies alike."""
        return self._successful("chat.postMessage", channel)

    def top_level_posts(self, channel: str | None = None) -> list[SlackCall]:
        return [call for call in self.posts(channel) if not call.args.get("thread_ts")]

    def updates(self, channel: str | None = None) -> list[SlackCall]:
        return self._successful("chat.update", channel)

    def ephemerals(self, user: str | None = None) -> list[SlackCall]:
        """Successful chat.postEphemeral calls: what only one person saw."""
        return [
            call
            for call in self._successful("chat.postEphemeral", None)
            if user is None or call.args.get("user") == user
        ]

    def message(self, channel: str, ts: str) -> StoredMessage:
        """The message as the channel shows it now (after every edit)."""
        return self.messages[(channel, ts)]

    def thread_replies(self, ts: str) -> list[SlackCall]:
        return [call for call in self.posts() if call.args.get("thread_ts") == ts]

    def _successful(self, method: str, channel: str | None) -> list[SlackCall]:
        return [
            call
            for call in self.calls
            if call.method == method
            and call.ok
            and (channel is None or call.args.get("channel") == channel)
        ]

    # -- the wire -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _parse_arguments(request)
        token = _bearer(request.headers.get("Authorization")) or args.pop("token", None)
        args.pop("token", None)
        arrived = time.monotonic()

        answer: dict[str, Any]
        status = 200
        headers: dict[str, str] = {}
        fault = self._take_fault(method)
        if token != self.token:
            answer = {"ok": False, "error": "not_authed" if not token else "invalid_auth"}
        elif fault is not None:
            answer = {"ok": False, "error": fault.error}
            status = fault.status
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
        elif method == "auth.test":
            answer = self._auth_test()
        elif method == "chat.postMessage" and (wait := self._too_soon(args, arrived)):
            answer = {"ok": False, "error": "ratelimited"}
            status = 429
            headers["Retry-After"] = f"{wait:.3f}"
            self.rate_limited += 1
        elif method == "chat.postMessage":
            answer = self._post_message(args)
            if answer.get("ok"):
                self._last_post_at[str(answer["channel"])] = arrived
        elif method == "conversations.history":
            answer = self._history(args)
        elif method == "chat.update":
            answer = self._update(args)
        elif method == "chat.postEphemeral":
            answer = self._post_ephemeral(args)
        else:
            answer = {"ok": False, "error": "unknown_method"}

        error = None if answer.get("ok") else str(answer.get("error"))
        self.calls.append(
            SlackCall(method=method, args=args, at=arrived, answer=answer, error=error)
        )
        return web.json_response(answer, status=status, headers=headers)

    def _too_soon(self, args: dict[str, Any], arrived: float) -> float | None:
        if self.post_interval_seconds is None:
            return None
        last = self._last_post_at.get(str(args.get("channel") or ""))
        if last is None or arrived - last >= self.post_interval_seconds:
            return None
        return self.post_interval_seconds - (arrived - last)

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first, metadata only when asked for."""
        channel = str(args.get("channel") or "")
        problem = self._check_channel(channel)
        if problem:
            return {"ok": False, "error": problem}
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in {"1", "true"}
        found = sorted(
            (
                m
                for (c, ts), m in self.messages.items()
                if c == channel and m.thread_ts is None and float(ts) > oldest
            ),
            key=lambda m: float(m.ts),
            reverse=True,
        )
        wire = []
        for message in found[:limit]:
            item = _wire_message(message)
            if with_metadata and "metadata" in message.extra:
                item["metadata"] = message.extra["metadata"]
            wire.append(item)
        return {"ok": True, "messages": wire, "has_more": len(found) > limit}

    def webhook_url(self, path: str = "T0FAKE/B0FAKE/fakeHookSecret") -> str:
        """An incoming-webhook URL served by this fake; posts land in ``hook_posts``."""
        return self.base_url.removesuffix("api/") + "services/" + path

    async def _handle_hook(self, request: web.Request) -> web.Response:
        """Incoming webhooks answer plain text: ``ok``, or an error code with a 4xx/5xx."""
        args = await _parse_arguments(request)
        fault = self._take_fault(HOOK_METHOD)
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            status = fault.status if fault.status != 200 else 400
            return web.Response(status=status, text=fault.error, headers=headers)
        problem = _check_content(args)
        if problem:
            return web.Response(status=400, text=problem)
        self.hook_posts.append({"path": request.match_info["path"], **args})
        return web.Response(text="ok")

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        return queue.popleft() if queue else None

    def _auth_test(self) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Workspace",
            "user": "notifier",
            "team_id": "T0FAKE",
            "user_id": "U0FAKE",
            "bot_id": "B0FAKE",
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        problem = self._check_channel(channel) or _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        thread_ts = args.get("thread_ts") or None
        ts = self._next_ts()
        message = StoredMessage(
            channel=channel,
            ts=ts,
            text=str(args.get("text") or ""),
            blocks=list(args.get("blocks") or []),
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        if isinstance(args.get("metadata"), dict):
            message.extra["metadata"] = args["metadata"]
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": _wire_message(message)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        ts = str(args.get("ts") or "")
        problem = self._check_channel(channel) or _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        message = self.messages.get((channel, ts))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.text = str(args.get("text") or "")
        message.blocks = list(args.get("blocks") or [])
        message.edits += 1
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": _wire_message(message),
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        """Shown to ``user`` only, never stored in the channel; Slack answers a message_ts."""
        channel = str(args.get("channel") or "")
        problem = self._check_channel(channel) or _check_content(args)
        if problem:
            return {"ok": False, "error": problem}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _check_channel(self, channel: str) -> str | None:
        if not channel or (self.channels is not None and channel not in self.channels):
            return "channel_not_found"
        return None

    def _next_ts(self) -> str:
        """Unique and increasing like Slack's: seconds, a dot, six digits."""
        self._ts_counter += 1
        value = self._ts_origin + self._ts_counter * 100
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"


def _check_content(args: dict[str, Any]) -> str | None:
    """The limits the real Slack enforces, so a rendering bug fails here and not in production."""
    text = args.get("text")
    blocks = args.get("blocks")
    if not text and not blocks:
        return "no_text"
    if text is not None and len(str(text)) > MAX_TEXT:
        return "msg_too_long"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        if not isinstance(block, dict) or "type" not in block:
            return "invalid_blocks"
        text_object = block.get("text")
        text_value = text_object.get("text", "") if isinstance(text_object, dict) else ""
        if block["type"] == "header" and len(text_value) > HEADER_TEXT_LIMIT:
            return "invalid_blocks"
        if block["type"] == "section" and len(text_value) > SECTION_TEXT_LIMIT:
            return "invalid_blocks"
        if block["type"] == "actions" and _bad_actions(block):
            return "invalid_blocks"
    return None


def _bad_actions(block: dict[str, Any]) -> bool:
    """Block Kit's limits for an actions block of buttons: 1 to 25 elements, unique action ids
    (255 characters), a plain_text label (75), a value (2,000), a url (3,000)."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        return True
    ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    if len(ids) != len(elements) or len(set(ids)) != len(ids):
        return True
    for element in elements:
        label = element.get("text")
        if element.get("type") != "button" or not isinstance(label, dict):
            return True
        if label.get("type") != "plain_text" or not 0 < len(str(label.get("text", ""))) <= 75:
            return True
        if len(str(element.get("action_id"))) > 255 or len(str(element.get("value", ""))) > 2000:
            return True
        if "url" in element and len(str(element["url"])) > 3000:
            return True
    return False


def _wire_message(message: StoredMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "type": "message",
        "user": "U0FAKE",
        "bot_id": "B0FAKE",
        "text": message.text,
        "blocks": message.blocks,
        "ts": message.ts,
    }
    if message.thread_ts:
        wire["thread_ts"] = message.thread_ts
    return wire


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[len("Bearer ") :].strip() or None
    return None


async def _parse_arguments(request: web.Request) -> dict[str, Any]:
    """Query, form and JSON arguments merged, with JSON-in-a-form-field (blocks) decoded."""
    args: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        else:
            form = await request.post()
            args.update({key: value for key, value in form.items() if isinstance(value, str)})
    for key in ("blocks", "attachments", "metadata"):
        value = args.get(key)
        if isinstance(value, str):
            try:
                args[key] = json.loads(value)
            except ValueError:
                args[key] = value
    for key in (
        "reply_broadcast",
        "unfurl_links",
        "unfurl_media",
        "mrkdwn",
        "as_user",
        "include_all_metadata",
    ):
        value = args.get(key)
        if isinstance(value, str):
            args[key] = value.lower() in {"1", "true"}
    return args
