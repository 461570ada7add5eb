"""The first hour with the command line, as issue 23 walked it: where the database is, what a
read command does without one, ids out of range, tables in a terminal, --json for scripts."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.cli import build_parser, main
from notifier.core.ids import MAX_ID
from notifier.store.migrate import head_revision
from tests.support.cli import run_main as run

CONFIG = """
[database]
url = "{url}"

[clanforge]
access_key = "ak"
secret_key = "sk"

[slack]
bot_token = "xoxb-1"
signing_secret = "${{EMPTY_SECRET:-}}"

[[watch]]
account_service_id = 1234
image_version_id = 567890
label = "EU fleet, build 1.4.2, the long-running nightly integration image for every region"

[[subscription]]
name = "builds"
slack_channel = "C0123456789"
"""


def write_config(directory: Path, url: str = "sqlite+aiosqlite:///notifier.db") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "notifier.toml"
    path.write_text(CONFIG.format(url=url), encoding="utf-8")
    return path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is not the configuration's."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_a_relative_sqlite_path_is_the_config_files_directorys_whatever_the_cwd(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "etc")
    database = tmp_path / "etc" / "notifier.db"

    code, out, _ = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    assert f'url = "sqlite+aiosqlite:///{database}"' in out

    code, out, err = run(capsys, "db", "upgrade", "--config", str(config))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"database {database} upgraded from empty to {head_revision()}",
        "configuration: 1 watch(es) added, 0 updated, 0 retired",
    ]
    assert database.is_file()
    assert list(elsewhere.iterdir()) == []

    code, out, _ = run(capsys, "db", "upgrade", "--config", str(config))
    assert out.splitlines()[0] == f"database {database} is up to date at {head_revision()}"


def test_read_commands_never_create_a_database_and_say_which_command_does(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "etc", "sqlite+aiosqlite:///data/sub/notifier.db")
    database = tmp_path / "etc" / "data" / "sub" / "notifier.db"
    for argv in (
        ["watch", "list"],
        ["subscription", "list"],
        ["events"],
        ["deliveries", "list"],
        ["watch", "add", "--asid", "1", "--image-version", "2"],
    ):
        code, out, err = run(capsys, *argv, "--config", str(config))
        assert (code, out) == (1, ""), argv
        assert err == (
            f"notifier: no database at {database}; create it with `notifier db upgrade` "
            "(or `notifier run`)\n"
        )
    # Not even the directories it would go in.
    assert not (tmp_path / "etc" / "data").exists()
    assert list(elsewhere.iterdir()) == []

    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    assert database.is_file()


def test_the_missing_database_is_named_by_its_plain_absolute_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config reached through ``..`` names the file as a person would look for it."""
    config = write_config(tmp_path / "etc", "sqlite+aiosqlite:///notifier.db")
    (tmp_path / "etc" / "other").mkdir()
    roundabout = tmp_path / "etc" / "other" / ".." / config.name
    code, _, err = run(capsys, "watch", "list", "--config", str(roundabout))
    assert code == 1
    assert f"no database at {tmp_path / 'etc' / 'notifier.db'};" in err


def test_read_commands_show_the_files_watches_and_subscriptions_before_the_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0

    code, out, _ = run(capsys, "watch", "list", "--json", "--config", str(config))
    assert code == 0
    [watch] = json.loads(out)
    assert (watch["image_version_id"], watch["source"], watch["status"]) == (567890, "config", None)

    code, out, _ = run(capsys, "subscription", "list", "--json", "--config", str(config))
    [subscription] = json.loads(out)
    assert (subscription["name"], subscription["target"]) == ("builds", "C0123456789")


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "add", "--asid", "99999999999999999999999", "--image-version", "1"],
        ["watch", "remove", "--image-version", "99999999999999999999999"],
        ["events", "--image-version", str(MAX_ID + 1)],
        ["deliveries", "retry", "99999999999999999999999"],
        ["deliveries", "list", "--limit", "0"],
    ],
)
def test_an_id_out_of_range_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"must be a whole number from 1 to {MAX_ID}, got '" in err
    assert "Traceback" not in err


def test_the_largest_id_works_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    big = str(MAX_ID)
    code, out, _ = run(
        capsys, "watch", "add", "--asid", big, "--image-version", big, "--config", str(config)
    )
    assert (code, out) == (0, f"watching image version {big} of account service {big}\n")
    code, out, err = run(capsys, "deliveries", "retry", big, "--config", str(config))
    assert (code, err) == (1, f"notifier: not found: {big}\n")
    assert run(capsys, "events", "--image-version", big, "--config", str(config))[:2] == (
        0,
        "no events yet\n",
    )
    assert run(capsys, "watch", "remove", "--image-version", big, "--config", str(config))[0] == 0


def test_a_config_watch_is_not_removed_from_the_cli_and_the_line_says_where_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    code, out, err = run(
        capsys, "watch", "remove", "--image-version", "567890", "--config", str(config)
    )
    assert (code, out) == (1, "")
    assert err == (
        f"notifier: image version 567890 comes from the configuration file {config}: remove its "
        "[[watch]] entry there (the next run would add it back)\n"
    )
    _, out, _ = run(capsys, "watch", "list", "--json", "--config", str(config))
    assert [w["image_version_id"] for w in json.loads(out)] == [567890]


def test_tables_fit_the_terminal_and_wide_shows_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    monkeypatch.setenv("COLUMNS", "80")

    _, out, _ = run(capsys, "watch", "list", "--config", str(config))
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "EU fleet, build" in out
    assert "…" in out

    _, out, _ = run(capsys, "watch", "list", "--wide", "--config", str(config))
    assert "the long-running nightly integration image for every region" in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_check_config_shows_an_empty_secret_as_empty_and_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code, out, err = run(capsys, "check-config", "--config", str(config))
    assert code == 0
    assert 'signing_secret = ""' in out
    assert 'bot_token = "********"' in out
    assert err == "notifier: warning: slack.signing_secret is set but empty\n"


def test_every_argument_has_help_text() -> None:
    def missing(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += missing(sub, f"{prefix} {name}")
            elif not action.help:
                found.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")
        return found

    assert missing(build_parser(), "notifier") == []


def test_demo_refuses_a_negative_duration(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--seconds", "-1"])
    assert exited.value.code == 2
    assert "--seconds: must be more than 0, got '-1'" in capsys.readouterr().err


def test_a_reader_that_goes_away_gets_no_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``notifier watch list --json | head -c 10``: the pipe closes early, nothing is printed."""
    config = write_config(tmp_path)
    assert run(capsys, "db", "upgrade", "--config", str(config))[0] == 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    # The child inherits a stdout whose reader is gone, as in a shell pipeline into `head`.
    # Started by hand, not by tests/support/service_process: that harness is async, and this
    # test cannot be, since `run` (notifier's main, in-process) starts an event loop of its own.
    finished = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "notifier", "watch", "list", "--json", "--config", str(config)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        timeout=30,
        check=False,
    )
    os.close(write_end)
    assert finished.stderr == b""
    assert finished.returncode == 1
