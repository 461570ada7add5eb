"""``notifier`` commands run in this process, as ``main`` runs them for a person at a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.cli import main


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``notifier ARGV``: (exit code, stdout, stderr) of this command alone."""
    capsys.readouterr()  # what earlier steps printed is not this command's
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[clanforge]
access_key = "${{CLANFORGE_ACCESS_KEY}}"
secret_key = "sk"

[[watch]]
account_service_id = 1234
image_version_id = 567890
label = "EU fleet, build 1.4.2"

[[subscription]]
name = "chatops"
webhook_url = "https://chatops.example.com/hooks/clanforge?token=abc"
events = ["imageversion.failed"]
"""


@pytest.fixture
def cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration whose database `notifier db upgrade` has created."""
    path = tmp_path / "notifier.toml"
    path.write_text(CONFIG.format(db=tmp_path / "notifier.db"), encoding="utf-8")
    monkeypatch.setenv("CLANFORGE_ACCESS_KEY", "ak-cli-secret")
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    return path
