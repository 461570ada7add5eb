"""Webhook subscription settings: transport safety, rotation secrets and filters checked at load."""

from __future__ import annotations

import pytest

from notifier.config import ConfigError, Settings, parse_config

BASE = """
[clanforge]
access_key = "a"
secret_key = "s"

[[subscription]]
name = "hook"
{lines}
"""
OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


def _load(lines: str) -> Settings:
    return parse_config(BASE.format(lines=lines), {}, "notifier.toml")


def _error(lines: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(lines)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_plain_http_to_a_remote_host_needs_allow_http() -> None:
    assert _error('webhook_url = "http://chat.example.com/hook"') == (
        "notifier.toml: subscription[0]: webhook_url must be https:// "
        "(set allow_http = true to send in clear text)"
    )
    _load('webhook_url = "http://chat.example.com/hook"\nallow_http = true')


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://127.9.9.9/hook", "http://localhost:9/x"]
)
def test_plain_http_to_loopback_is_allowed_for_tests_and_the_demo(url: str) -> None:
    # Loopback is a private network: the demo and tests allow it, as an operator would theirs.
    allowing = '[network]\nallow_private = ["127.0.0.0/8"]\n' + BASE.format(
        lines=f'webhook_url = "{url}"'
    )
    parse_config(allowing, {}, "notifier.toml")


def test_a_loopback_webhook_without_allow_private_names_the_rule_and_the_key() -> None:
    assert _error('webhook_url = "http://127.9.9.9/hook"') == (
        "notifier.toml: subscription[0].webhook_url: address 127.9.9.9 is a loopback address: "
        "subscription targets may only reach public addresses unless [network] allow_private "
        "lists a network containing it"
    )


@pytest.mark.parametrize("url", ["ftp://chat.example.com/hook", "https:///nohost", "chat.example"])
def test_a_webhook_url_must_be_http_or_https_with_a_host(url: str) -> None:
    message = _error(f'webhook_url = "{url}"')
    assert message.startswith("notifier.toml: subscription[0].webhook_url: must be an http(s) URL")


def test_rotation_secrets_sign_after_the_main_secret() -> None:
    settings = _load(
        f'webhook_url = "https://x.example/h"\nwebhook_secret = "{OLD}"\n'
        f'webhook_secrets = ["{NEW}"]'
    )
    assert settings.subscription[0].signing_secrets == (OLD, NEW)


def test_a_bad_rotation_secret_is_named_by_its_position() -> None:
    message = _error(
        f'webhook_url = "https://x.example/h"\nwebhook_secrets = ["{NEW}", "whsec_short"]'
    )
    assert message.startswith("notifier.toml: subscription[0].webhook_secrets: entry 1: ")


def test_an_unknown_state_name_is_a_config_error_naming_it() -> None:
    message = _error('webhook_url = "https://x.example/h"\nstates = ["Failed", "Exploded"]')
    assert message == (
        "notifier.toml: subscription[0].states: unknown state 'Exploded'; "
        "known: Created, Pending, Queued, Running, Complete, Failed, Squashed"
    )


def test_webhook_only_keys_on_a_slack_subscription_are_refused() -> None:
    message = _error('slack_channel = "C1"\npreset = "discord"')
    assert "preset goes with webhook_url" in message


def test_label_glob_and_preset_are_kept() -> None:
    settings = _load('webhook_url = "https://x.example/h"\nlabel_glob = "EU*"\npreset = "teams"')
    sub = settings.subscription[0]
    assert sub.label_glob == "EU*"
    assert sub.body_template is not None
    assert "AdaptiveCard" in sub.body_template


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("discord.com/api/webhooks/123/t0ken-s3cret", "no scheme (write https://...)"),
        ("ftp://chat.example.com/hook/t0ken-s3cret", "got 'ftp://chat.example.com'"),
        ("https://bot:t0ken-s3cret@chat.example.com/hook", "must not carry user:password@"),
        ("https://chat.example.com:99999/hook/t0ken-s3cret", "is not a valid URL"),
    ],
)
def test_a_bad_webhook_url_is_named_without_quoting_its_token(url: str, problem: str) -> None:
    message = _error(f'webhook_url = "{url}"')

    assert message.startswith("notifier.toml: subscription[0].webhook_url: ")
    assert problem in message
    assert "t0ken-s3cret" not in message
