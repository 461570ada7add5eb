"""``notifier`` commands run in this process, as ``main`` runs them for a person at a terminal."""

from __future__ import annotations

import pytest

from notifier.cli import main


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``notifier ARGV``: (exit code, stdout, stderr) of this command alone."""
    capsys.readouterr()  # what earlier steps printed is not this command's
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
