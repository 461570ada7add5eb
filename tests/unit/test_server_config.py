"""The [server] section: where the HTTP server listens and when it may listen beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.cli import main
from notifier.config import ConfigError, parse_config

BASE = """
[clanforge]
access_key = "ak"
secret_key = "sk"
"""


def test_no_server_section_means_no_server() -> None:
    assert parse_config(BASE, {}).server is None


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:9000", "[::1]:8080"])
def test_loopback_without_token_is_allowed(listen: str) -> None:
    settings = parse_config(BASE + f'[server]\nlisten = "{listen}"\n', {})
    assert settings.server is not None
    assert settings.server.admin_token is None


def test_empty_token_from_unset_variable_counts_as_no_token() -> None:
    text = BASE + '[server]\nadmin_token = "${NOTIFIER_ADMIN_TOKEN:-}"\n'
    server = parse_config(text, {}).server
    assert server is not None
    assert server.admin_token is None


def test_beyond_loopback_without_token_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + '[server]\nlisten = "0.0.0.0:8080"\n', {}, "notifier.toml")
    assert str(caught.value) == (
        "notifier.toml: server: listen '0.0.0.0:8080' is reachable from other machines, "
        "so admin_token must be set (or listen on 127.0.0.1)"
    )


def test_beyond_loopback_with_token_is_allowed() -> None:
    text = BASE + '[server]\nlisten = "0.0.0.0:8080"\nadmin_token = "t0ken"\n'
    server = parse_config(text, {}).server
    assert server is not None
    assert server.port == 8080


def test_run_refuses_to_start_beyond_loopback_without_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notifier.toml"
    config.write_text(BASE + '[server]\nlisten = "0.0.0.0:8080"\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "admin_token must be set" in err
