"""Configuration: every kind of mistake is one line naming the file, the key and the problem."""

from __future__ import annotations

import pytest

from notifier.config import ConfigError, parse_config
from notifier.config_output import render_effective_config

VALID = """
[database]
url = "sqlite+aiosqlite:///notifier.db"

[clanforge]
base_url = "https://api.multiplay.co.uk"
access_key = "${CLANFORGE_ACCESS_KEY}"
secret_key = "${CLANFORGE_SECRET_KEY}"
timeout_seconds = 10
max_concurrency = 8
requests_per_second = 5

[poll]
interval_seconds = 0.2
running_interval_seconds = 10

[slack]
bot_token = "${SLACK_BOT_TOKEN}"
base_url = "https://slack.com/api/"
signing_secret = "${SLACK_SIGNING_SECRET}"

[server]
listen = "127.0.0.1:8080"
admin_token = "${NOTIFIER_ADMIN_TOKEN}"

[[watch]]
account_service_id = 1234
image_version_id = 567890
label = "EU fleet, build 1.4.2"

[[subscription]]
name = "builds"
slack_channel = "C0123456789"
events = ["imageversion.state_changed"]

[[subscription]]
name = "chatops"
webhook_url = "https://chatops.example.com/hooks/clanforge"
webhook_secret = "${CHATOPS_WEBHOOK_SECRET}"
events = ["imageversion.failed", "imageversion.completed"]
"""

ENV = {
    "CLANFORGE_ACCESS_KEY": "AKIA-secret-access",
    "CLANFORGE_SECRET_KEY": "very-secret-key",
    "SLACK_BOT_TOKEN": "xoxb-secret-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "NOTIFIER_ADMIN_TOKEN": "admin-secret-token",
    "CHATOPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def _assert_mistake_is_one_line(config: str, change: tuple[str, str], message: str) -> None:
    """``config`` with ``change`` made is refused with one line starting with ``message``."""
    text = config.replace(*change)
    assert text != config
    with pytest.raises(ConfigError) as caught:
        parse_config(text, ENV, "notifier.toml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_design_example_config_is_valid() -> None:
    settings = parse_config(VALID, ENV, "notifier.toml")
    assert settings.poll.interval_seconds == 0.2
    assert settings.clanforge.access_key is not None
    assert settings.clanforge.access_key.get_secret_value() == "AKIA-secret-access"
    assert [s.kind for s in settings.subscription] == ["slack_channel", "webhook"]
    assert settings.watch[0].label == "EU fleet, build 1.4.2"


def test_effective_config_masks_every_secret() -> None:
    printed = render_effective_config(parse_config(VALID, ENV, "notifier.toml"))
    for secret in ENV.values():
        assert secret not in printed
    assert 'access_key = "********"' in printed
    assert 'label = "EU fleet, build 1.4.2"' in printed


def test_database_password_is_masked_in_effective_config() -> None:
    text = VALID.replace(
        "sqlite+aiosqlite:///notifier.db", "postgresql+asyncpg://notifier:hunter2@db/notifier"
    )
    printed = render_effective_config(parse_config(text, ENV, "notifier.toml"))
    assert "hunter2" not in printed
    assert "postgresql+asyncpg://notifier:***@db/notifier" in printed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("timeout_seconds = 10", 'timeout_seconds = "ten"'),
            "notifier.toml: clanforge.timeout_seconds: Input should be a valid number",
        ),
        (
            ("max_concurrency = 8", "max_concurrency = 0"),
            "notifier.toml: clanforge.max_concurrency: Input should be greater than 0",
        ),
        (
            ("requests_per_second = 5", "requests_per_second = 5\nrequest_per_minute = 3"),
            "notifier.toml: clanforge.request_per_minute: unknown key",
        ),
        (
            ("access_key =", "acces_key ="),
            "notifier.toml: clanforge.acces_key: unknown key",
        ),
        (
            ('"imageversion.state_changed"]', '"imageversion.exploded"]'),
            "notifier.toml: subscription[0].events: unknown event type 'imageversion.exploded'",
        ),
        (
            ("image_version_id = 567890", 'image_version_id = "soon"'),
            "notifier.toml: watch[0].image_version_id: Input should be a valid integer",
        ),
        (
            ('listen = "127.0.0.1:8080"', 'listen = "localhost"'),
            "notifier.toml: server.listen: must be HOST:PORT, got 'localhost'",
        ),
        (
            ('url = "sqlite+aiosqlite:///notifier.db"', 'url = "mysql://x/y"'),
            "notifier.toml: database.url: driver 'mysql' is not supported",
        ),
        (
            ('"${CHATOPS_WEBHOOK_SECRET}"', '"not-a-whsec"'),
            "notifier.toml: subscription[1].webhook_secret: must be a Standard Webhooks secret",
        ),
        (
            (
                'slack_channel = "C0123456789"',
                'slack_channel = "C0123456789"\nwebhook_url = "https://x.test/"',
            ),
            "notifier.toml: subscription[0]: needs exactly one of slack_channel, "
            "slack_webhook_url or webhook_url",
        ),
        (
            ('name = "chatops"', 'name = "builds"'),
            "notifier.toml: (top level): subscription name 'builds' is used twice",
        ),
        (
            ('base_url = "https://api.multiplay.co.uk"', 'base_url = "api.multiplay.co.uk"'),
            "notifier.toml: clanforge.base_url: must be an http(s) URL with a host",
        ),
        (
            ("[[watch]]", "[watch]"),
            "notifier.toml: watch: Input should be a valid list",
        ),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else None,
)
def test_mistake_is_reported_with_file_key_and_problem(
    change: tuple[str, str], message: str
) -> None:
    _assert_mistake_is_one_line(VALID, change, message)


def test_unset_environment_variable_is_named() -> None:
    env = {k: v for k, v in ENV.items() if k != "SLACK_BOT_TOKEN"}
    with pytest.raises(
        ConfigError,
        match=r"^notifier.toml: slack.bot_token: environment variable SLACK_BOT_TOKEN is not set$",
    ):
        parse_config(VALID, env, "notifier.toml")


def test_environment_default_is_used_when_variable_is_unset() -> None:
    text = VALID.replace('"${CLANFORGE_ACCESS_KEY}"', '"${NOT_SET_ANYWHERE:-fallback}"')
    settings = parse_config(text, ENV, "notifier.toml")
    assert settings.clanforge.access_key is not None
    assert settings.clanforge.access_key.get_secret_value() == "fallback"


def test_invalid_toml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^notifier.toml: not valid TOML: .*line 3"):
        parse_config("[clanforge]\naccess_key = 'a'\nsecret_key = \n", ENV, "notifier.toml")


def test_slack_channel_subscription_needs_a_bot_token() -> None:
    text = VALID.replace('bot_token = "${SLACK_BOT_TOKEN}"\n', "")
    with pytest.raises(ConfigError, match=r"slack\.bot_token is not set"):
        parse_config(text, ENV, "notifier.toml")


HOOK_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


def test_slack_incoming_webhook_subscription_keeps_its_url_secret() -> None:
    text = VALID + '\n[[subscription]]\nname = "hook"\nslack_webhook_url = "${SLACK_HOOK}"\n'
    settings = parse_config(text, {**ENV, "SLACK_HOOK": HOOK_URL}, "notifier.toml")

    hook = settings.subscription[2]
    assert (hook.kind, hook.target, hook.config_secrets) == (
        "slack_webhook",
        "https://hooks.slack.com",
        (HOOK_URL,),
    )
    assert HOOK_URL not in render_effective_config(settings)


def test_bad_slack_incoming_webhook_url_is_named_but_not_quoted() -> None:
    text = VALID + '\n[[subscription]]\nname = "hook"\nslack_webhook_url = "hooks/XXXXsecret"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, ENV, "notifier.toml")
    assert str(caught.value).startswith(
        "notifier.toml: subscription[2].slack_webhook_url: must be the URL Slack gave"
    )
    assert "XXXXsecret" not in str(caught.value)


DELIVERY = (
    VALID
    + """
[delivery]
timeout_seconds = 15
retry_schedule_seconds = [5, 300, 1800]
max_attempts = 4
max_age_seconds = 86400
lease_seconds = 35
shutdown_grace_seconds = 10
"""
)


def test_delivery_section_configures_the_one_retry_policy() -> None:
    settings = parse_config(DELIVERY, ENV, "notifier.toml")
    policy = settings.delivery.retry_policy()
    assert policy.schedule_seconds == (5, 300, 1800)
    assert (policy.max_attempts, policy.max_age_seconds) == (4, 86400)
    assert (settings.delivery.lease_seconds, settings.delivery.shutdown_grace_seconds) == (35, 10)


def test_delivery_lease_defaults_to_twice_the_timeout_plus_five() -> None:
    text = DELIVERY.replace("lease_seconds = 35\n", "").replace(
        "timeout_seconds = 15", "timeout_seconds = 1"
    )
    assert parse_config(text, ENV, "notifier.toml").delivery.lease_seconds == 7
    assert parse_config(VALID, ENV, "notifier.toml").delivery.lease_seconds == 35


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("lease_seconds = 35", "lease_seconds = 15"),
            "notifier.toml: delivery: lease_seconds (15) must be longer than timeout_seconds (15)",
        ),
        (
            ("[5, 300, 1800]", "[300, 5]"),
            "notifier.toml: delivery.retry_schedule_seconds: must not decrease",
        ),
        (
            ("[5, 300, 1800]", "[]"),
            "notifier.toml: delivery.retry_schedule_seconds: List should have at least 1 item",
        ),
        (
            ("max_attempts = 4", "max_attempts = 0"),
            "notifier.toml: delivery.max_attempts: Input should be greater than 0",
        ),
        (
            ("shutdown_grace_seconds = 10", "shutdown_grace = 10"),
            "notifier.toml: delivery.shutdown_grace: unknown key",
        ),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else None,
)
def test_delivery_mistake_is_one_line_naming_the_key(change: tuple[str, str], message: str) -> None:
    _assert_mistake_is_one_line(DELIVERY, change, message)


def test_poll_gap_bound_is_configurable_and_positive() -> None:
    assert parse_config(VALID, ENV, "notifier.toml").poll.policy().max_gap_seconds == 120
    bounded = VALID.replace("[poll]\n", "[poll]\nmax_gap_seconds = 45\n", 1)
    assert parse_config(bounded, ENV, "notifier.toml").poll.policy().max_gap_seconds == 45
    with pytest.raises(ConfigError, match="max_gap_seconds"):
        parse_config(VALID.replace("[poll]\n", "[poll]\nmax_gap_seconds = 0\n", 1), ENV, "x.toml")


_MINIMAL = '[clanforge]\naccess_key = "a"\nsecret_key = "b"\n'


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        (
            '[[watch]]\naccount_service_id = 1\nimage_version_id = 2\nowners = ["alice"]\n',
            "watch[0].owners",
            "'alice' is not a Slack mention",
        ),
        (
            '[[subscription]]\nname = "s"\nslack_channel = "C1"\nmention = ["<!channel>"]\n',
            "subscription[0].mention",
            "<!channel> pages every member of the channel",
        ),
        (
            '[[subscription]]\nname = "s"\nslack_channel = "C1"\nmention_on = ["job.failed"]\n',
            "subscription[0].mention_on",
            "unknown event type 'job.failed'",
        ),
        (
            '[[subscription]]\nname = "s"\nslack_channel = "C1"\ndigest = "09:00 Mars/Base"\n',
            "subscription[0].digest",
            "unknown time zone 'Mars/Base'",
        ),
        (
            '[[subscription]]\nname = "s"\nwebhook_url = "https://example.com/h"\n'
            'mention = ["<!here>"]\n',
            "subscription[0]",
            "mention goes with slack_channel or slack_webhook_url",
        ),
    ],
)
def test_owners_mentions_and_digest_are_checked_naming_the_key(
    entry: str, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_MINIMAL + entry, {}, "notifier.toml")
    assert caught.value.key == key
    assert says in caught.value.problem


def test_owners_mentions_and_digest_reach_the_sync_entries() -> None:
    settings = parse_config(
        _MINIMAL
        + '[slack]\nbot_token = "xoxb-1"\n'
        + "[[watch]]\naccount_service_id = 1\nimage_version_id = 2\n"
        + 'owners = ["<@U0A1>", "<@U0A1>"]\n'
        + '[[subscription]]\nname = "s"\nslack_channel = "C1"\nmention = ["<!here>"]\n'
        + 'digest = "07:30 America/New_York"\n',
        {},
    )
    assert settings.watch[0].entry().owners == ("<@U0A1>",)
    entry = settings.subscription[0].entry()
    assert (entry.mention_on, entry.mention, entry.digest) == (
        ("imageversion.failed",),
        ("<!here>",),
        "07:30 America/New_York",
    )
