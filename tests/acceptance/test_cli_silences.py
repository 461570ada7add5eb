"""``notifier silence add|list|expire`` as people use them: exit codes, the one line on stderr,
the table and JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import cli_config as config
from tests.support.cli import run_main as run

__all__ = ["config"]  # the fixture: a configuration whose database exists


def test_silence_add_list_expire(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ("--config", str(config))
    code, out, err = run(
        capsys,
        "silence", "add", "--image-version", "567890", "--for", "2h",
        "--reason", "known flaky builder", "--created-by", "ana", *where,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith("silence 1 holds image version 567890 until ")
    assert out.endswith("; end it early with `notifier silence expire 1`\n")

    code, out, _ = run(capsys, "silence", "list", "--wide", *where)
    header, row = out.splitlines()
    assert header.split() == ["ID", "MATCHES", "STATE", "FROM", "UNTIL", "BY", "HELD", "REASON"]
    assert row.split()[:5] == ["1", "image", "version", "567890", "active"]
    assert row.split()[-5:] == ["ana", "0", "known", "flaky", "builder"]

    code, out, _ = run(capsys, "silence", "list", "--json", *where)
    [listed] = json.loads(out)
    assert (listed["id"], listed["state"], listed["held_events"]) == (1, "active", 0)

    code, out, err = run(capsys, "silence", "expire", "1", *where)
    assert (code, err) == (0, "")
    assert out.startswith("silence 1 expired;")
    code, out, err = run(capsys, "silence", "expire", "1", *where)
    assert code == 1
    assert err.startswith("notifier: silence 1 already ended at ")
    code, out, _ = run(capsys, "silence", "list", *where)
    assert out == "no active silences\n"
    code, out, _ = run(capsys, "silence", "list", "--all", "--json", *where)
    assert [s["state"] for s in json.loads(out)] == ["expired"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--for", "2h"], "notifier: error: a silence needs a matcher: an image version, "
         "an account service or a label glob"),
        (["--label", "EU*", "--for", "90s"], "notifier: error: duration '90s' is not a whole "
         "number of minutes, hours or days (write 30m, 2h or 1d)"),
        (["--label", "EU*", "--for", "45d"], "notifier: error: duration 45d is longer than the "
         "most a silence may last, 30d"),
        (["--asid", "1234", "--until", "2026-01-01"], "notifier: error: until needs a time zone "
         "(2026-12-01T18:00:00Z or +01:00)"),
        (["--asid", "1234", "--until", "2020-01-01T00:00:00Z"], "notifier: error: until must be "
         "at least a minute in the future"),
        (["--asid", "1234", "--for", "1h", "--reason", "a\tb"], "notifier: error: --reason must "
         "be one line of text without control characters"),
    ],
)  # fmt: skip
def test_a_bad_silence_exits_2_with_one_line_and_adds_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    code, out, err = run(capsys, "silence", "add", *argv, "--config", str(config))
    assert (code, out, err) == (2, "", line + "\n")
    _, out, _ = run(capsys, "silence", "list", "--all", "--config", str(config))
    assert out == "no silences\n"


def test_for_and_until_together_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(
            capsys,
            "silence", "add", "--asid", "1", "--for", "1h", "--until", "2030-01-01T00:00:00Z",
            "--config", str(config),
        )  # fmt: skip
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "argument --until: not allowed with argument --for" in err
    assert len(err.splitlines()) == 1


def test_expiring_an_unknown_silence_exits_1_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "silence", "expire", "7", "--config", str(config))
    assert (code, err) == (1, "notifier: no silence 7 (see `notifier silence list --all`)\n")
