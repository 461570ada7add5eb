"""The command line as people use it: exit codes, the line on stderr, the tables on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifier.cli import main
from tests.support.cli import cli_config as config
from tests.support.cli import run_main as run

__all__ = ["config"]  # the fixture: a configuration whose database exists


def test_watch_add_list_remove(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "watch",
        "add",
        "--asid",
        "1234",
        "--image-version",
        "42",
        "--label",
        "nightly",
        "--config",
        str(config),
    )
    assert (code, out) == (0, "watching image version 42 of account service 1234\n")

    code, out, _ = run(capsys, "watch", "list", "--config", str(config), "--wide")
    assert code == 0
    header, row, config_row = out.splitlines()
    assert header.split() == [
        "ASID",
        "IMAGE",
        "VERSION",
        "LABEL",
        "STATE",
        "PROGRESS",
        "ETA",
        "SOURCE",
        "LAST",
        "ERROR",
    ]
    assert row.split() == ["1234", "42", "nightly", "-", "-", "-", "cli"]
    # The file's [[watch]], loaded by `db upgrade` before any `run`.
    assert config_row.split() == [
        *["1234", "567890", "EU", "fleet,", "build", "1.4.2"],
        *["-", "-", "-", "config"],
    ]

    code, _, err = run(
        capsys, "watch", "add", "--asid", "1234", "--image-version", "42", "--config", str(config)
    )
    assert (code, err) == (
        1,
        "notifier: image version 42 of account service 1234 is already watched\n",
    )

    assert run(capsys, "watch", "remove", "--image-version", "42", "--config", str(config))[0] == 0
    code, _, err = run(capsys, "watch", "remove", "--image-version", "42", "--config", str(config))
    assert (code, err) == (1, "notifier: image version 42 is not watched\n")


def test_check_config_prints_masked_config(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert (code, err) == (
        0,
        "notifier: warning: subscription 'chatops' sends unsigned webhooks: its receiver cannot "
        "tell them from forged ones (set webhook_secret)\n",
    )
    assert 'access_key = "********"' in out
    assert "ak-cli-secret" not in out
    # A webhook URL's path and query often are its credential (Discord, Teams, Slack).
    assert 'webhook_url = "https://chatops.example.com/…"' in out
    assert "token=abc" not in out


def test_missing_variable_exits_2_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLANFORGE_ACCESS_KEY")
    code, out, err = run(capsys, "watch", "list", "--config", str(config))
    assert (code, out) == (2, "")
    assert err == (
        f"notifier: {config}: clanforge.access_key: environment variable CLANFORGE_ACCESS_KEY "
        "is not set\n"
    )


def test_config_path_comes_from_environment(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_CONFIG", str(config))
    assert run(capsys, "check-config")[0] == 0
    monkeypatch.setenv("NOTIFIER_CONFIG", str(config.parent / "missing.toml"))
    code, _, err = run(capsys, "check-config")
    assert (code, err) == (2, f"notifier: {config.parent / 'missing.toml'}: file not found\n")


def test_bad_usage_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["watch", "add", "--asid", "twelve", "--image-version", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "notifier watch add: error: argument --asid: must be a whole number from 1 to "
        "9007199254740991, got 'twelve' (see notifier watch add --help)\n"
    )


def test_subscription_list_hides_webhook_url_path(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Config subscriptions reach the database with `db upgrade` (the fixture's) or `run`.
    code, out, _ = run(capsys, "subscription", "list", "--config", str(config))
    assert code == 0
    assert "https://chatops.example.com/…" in out
    assert "token=abc" not in out


def test_deliveries_list_and_retry_when_empty(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "deliveries", "list", "--status", "dead", "--config", str(config))[1] == (
        "no deliveries with status dead\n"
    )
    code, out, _ = run(capsys, "deliveries", "retry", "--all-dead", "--config", str(config))
    assert (code, out) == (0, "0 deliveries queued to be sent again\n")
    code, _, err = run(capsys, "deliveries", "retry", "--config", str(config))
    assert (code, err) == (
        2,
        "notifier: error: give delivery ids or --all-dead, not both or neither\n",
    )


def test_db_upgrade_on_unreachable_postgres_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pg.toml"
    path.write_text(
        '[database]\nurl = "postgresql+asyncpg://nobody@127.0.0.1:1/none"\n'
        '[clanforge]\naccess_key = "a"\nsecret_key = "b"\n',
        encoding="utf-8",
    )
    code, _, err = run(capsys, "db", "upgrade", "--config", str(path))
    assert code == 1
    assert err.startswith("notifier: ")
    assert err.count("\n") == 1


def test_watch_add_with_owners_lists_them_in_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        *("watch", "add", "--asid", "1234", "--image-version", "42", "--config", str(config)),
        *("--owner", "<@U024BE7LH>", "--owner", "<!subteam^SAZ94GDB8>"),
    )
    assert (code, err) == (0, "")

    code, out, _ = run(capsys, "watch", "list", "--json", "--config", str(config))
    listed = {w["image_version_id"]: w for w in json.loads(out)}
    assert listed[42]["owners"] == ["<@U024BE7LH>", "<!subteam^SAZ94GDB8>"]


def test_an_owner_that_is_no_slack_mention_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["watch", "add", "--asid", "1", "--image-version", "2", "--owner", "@alice"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "notifier watch add: error: argument --owner: '@alice' is not a Slack mention; write "
        '"<@U…>" (a Slack user id) or "<!subteam^S…>" (a user group id) '
        "(see notifier watch add --help)\n"
    )
