"""Configuration of several Clanforge accounts, poll intervals, detectors and discovery."""

from __future__ import annotations

import pytest

from notifier.config import ConfigError, parse_config
from notifier.config_output import render_effective_config

ACCOUNT = """
[[clanforge.account]]
name = "us-fleet"
access_key = "us-ak-secret"
secret_key = "us-sk-secret"
account_service_ids = [2222]
requests_per_second = 2
"""


def config(clanforge: str = 'access_key = "ak"\nsecret_key = "sk"', rest: str = "") -> str:
    return f"[clanforge]\n{clanforge}\n{rest}"


def test_each_account_binds_its_account_services_and_has_its_own_rate() -> None:
    settings = parse_config(config(rest=ACCOUNT), {})
    credentials = {c.name: c for c in settings.clanforge.credentials()}
    assert set(credentials) == {"default", "us-fleet"}
    assert credentials["us-fleet"].requests_per_second == 2
    assert credentials["us-fleet"].burst == 1  # evenly spaced unless a burst is configured
    assert credentials["default"].requests_per_second == 5
    assert settings.clanforge.credential_for(2222) == "us-fleet"
    assert settings.clanforge.credential_for(1234) == "default"


def test_accounts_alone_are_enough_when_they_cover_every_watch() -> None:
    text = config("", ACCOUNT + "[[watch]]\naccount_service_id = 2222\nimage_version_id = 1\n")
    assert parse_config(text, {}).clanforge.credential_for(2222) == "us-fleet"


def test_a_watch_no_credential_may_poll_is_an_error_naming_it() -> None:
    text = config("", ACCOUNT + "[[watch]]\naccount_service_id = 9\nimage_version_id = 1\n")
    with pytest.raises(ConfigError, match=r"watch 9/1: no \[\[clanforge.account\]\] lists"):
        parse_config(text, {})


def test_no_credentials_at_all_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"clanforge: .*needs access_key and secret_key"):
        parse_config(config(""), {})


def test_one_account_service_bound_twice_is_an_error() -> None:
    twice = ACCOUNT + ACCOUNT.replace("us-fleet", "other")
    with pytest.raises(ConfigError, match="account service 2222 is bound to both"):
        parse_config(config(rest=twice), {})


def test_account_secrets_are_masked_in_the_effective_config() -> None:
    shown = render_effective_config(parse_config(config(rest=ACCOUNT), {}))
    assert "us-ak-secret" not in shown
    assert "us-sk-secret" not in shown
    assert 'name = "us-fleet"' in shown


def test_unknown_key_in_the_detect_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"detect\.stall_seconds: unknown key"):
        parse_config(config(rest="[detect]\nstall_seconds = 5\n"), {})


def test_milestones_must_be_between_0_and_100() -> None:
    with pytest.raises(ConfigError, match=r"detect\.progress_milestones\[0\]"):
        parse_config(config(rest="[detect]\nprogress_milestones = [100]\n"), {})


def test_waiting_interval_defaults_to_twice_the_base_interval() -> None:
    settings = parse_config(config(rest="[poll]\ninterval_seconds = 7\n"), {})
    assert settings.poll.policy().waiting_interval() == 14


def test_discovery_needs_a_credential_for_its_account_service() -> None:
    text = config("", ACCOUNT + "[discovery]\naccount_service_ids = [5]\n")
    with pytest.raises(ConfigError, match="discovery: no credential may see account service 5"):
        parse_config(text, {})
