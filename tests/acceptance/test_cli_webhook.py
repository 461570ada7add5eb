"""``notifier webhook test`` and ``notifier webhook verify`` as a person uses them."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifier.cli import main
from notifier.testing.webhook_receiver import ReceivedRequest, WebhookReceiver

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="

CONFIG = """
[clanforge]
access_key = "ak"
secret_key = "sk"

[network]
allow_private = ["127.0.0.0/8", "::1/128"]

[[subscription]]
name = "chatops"
webhook_url = "{url}"
webhook_secret = "{old}"
webhook_secrets = ["{new}"]
events = ["imageversion.failed"]
"""


@pytest.fixture
def config(tmp_path: Path, receiver: WebhookReceiver) -> Path:
    path = tmp_path / "notifier.toml"
    path.write_text(CONFIG.format(url=receiver.url, old=OLD, new=NEW), encoding="utf-8")
    return path


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # main() runs its own event loop: give it a thread so the receiver keeps serving on ours.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_webhook_test_sends_a_signed_sample_and_prints_status_and_time(
    config: Path, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _run(capsys, "webhook", "test", "chatops", "--config", str(config))

    assert (code, err) == (0, "")
    assert re.fullmatch(
        r"chatops: 204 in \d+ ms \(http://127\.0\.0\.1:\d+, 2 signature\(s\), "
        r"webhook-id evt_test_[0-9a-f]{16}\)\n",
        out,
    )
    [request] = receiver.requests
    assert request.headers["webhook-id"] in out
    for secret in (OLD, NEW):
        [payload] = receiver.verified_payloads(secret)
        assert payload["type"] == "imageversion.failed"
    # The sample reads like a job that just failed: detected when it was sent, ETA still ahead.
    sent = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    detected = datetime.fromisoformat(payload["timestamp"])
    assert detected <= sent
    assert datetime.fromisoformat(payload["data"]["current"]["eta"]) > detected


async def test_webhook_test_reports_a_failing_receiver_and_exits_1(
    config: Path, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.respond_next(500)

    code, out, err = await _run(capsys, "webhook", "test", "chatops", "--config", str(config))

    assert (code, out) == (1, "")
    assert re.fullmatch(
        r"chatops: failed after \d+ ms: webhook http://127\.0\.0\.1:\d+ answered 500\n", err
    )


async def test_webhook_test_of_an_unknown_name_exits_2_listing_the_webhooks(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await _run(capsys, "webhook", "test", "chatopz", "--config", str(config))

    assert (code, out) == (2, "")
    assert err == (
        "notifier: error: no webhook subscription named 'chatopz' "
        "(webhook subscriptions: chatops)\n"
    )


def _raw(request: ReceivedRequest) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    return f"POST {request.path} HTTP/1.1\r\n{head}\r\n".encode() + request.body


@pytest.fixture
async def captured(
    config: Path, receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> bytes:
    """The request ``webhook test chatops`` sent, as a person pastes it from a receiver's log."""
    await _run(capsys, "webhook", "test", "chatops", "--config", str(config))
    return _raw(receiver.requests[0])


def _stdin(monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(raw)))


async def _verify(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raw: bytes,
    secret: str,
) -> tuple[int, str, str]:
    _stdin(monkeypatch, raw)
    return await _run(capsys, "webhook", "verify", "--secret", secret)


async def test_webhook_verify_accepts_a_captured_request_for_either_rotation_secret(
    captured: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for position, secret in ((1, OLD), (2, NEW)):
        code, out, err = await _verify(capsys, monkeypatch, captured, secret)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"signature: matches ({position} of 2 offered)"
        assert lines[1].startswith("timestamp: ")
        assert lines[2] == "valid"


async def test_webhook_verify_shows_the_expected_signature_for_a_changed_body(
    captured: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = captured.replace(b'"progress":80', b'"progress":81', 1)

    code, out, _ = await _verify(capsys, monkeypatch, raw, OLD)

    assert code == 1
    assert "signature: none of the 2 offered matches; expected v1," in out
    assert out.endswith("NOT valid\n")


async def test_webhook_verify_of_garbage_says_what_it_cannot_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = await _verify(capsys, monkeypatch, b"hello", OLD)

    assert code == 1
    assert out == (
        "cannot read the request: no blank line between the headers and the body\nNOT valid\n"
    )


async def test_webhook_verify_takes_the_secret_from_the_environment(
    captured: bytes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, captured)
    monkeypatch.setenv("NOTIFIER_WEBHOOK_SECRET", NEW)

    code, out, _ = await _run(capsys, "webhook", "verify")

    assert code == 0
    assert out.endswith("valid\n")


async def test_webhook_verify_without_any_secret_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIER_WEBHOOK_SECRET", raising=False)
    _stdin(monkeypatch, b"x: y\r\n\r\n{}")

    code, out, err = await _run(capsys, "webhook", "verify")

    assert (code, out) == (2, "")
    assert err == (
        "notifier: error: give --secret whsec_..., set NOTIFIER_WEBHOOK_SECRET, or name a "
        "webhook subscription of the configuration\n"
    )


async def test_webhook_verify_takes_the_secrets_of_a_named_subscription_from_the_config(
    config: Path,
    captured: bytes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stdin(monkeypatch, captured)
    code, out, err = await _run(capsys, "webhook", "verify", "chatops", "--config", str(config))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "valid"

    _stdin(monkeypatch, captured)
    code, out, err = await _run(capsys, "webhook", "verify", "nope", "--config", str(config))
    assert (code, out) == (2, "")
    assert err.startswith("notifier: error: no webhook subscription named 'nope'")
