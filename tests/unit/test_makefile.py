"""The Makefile is the one place that says what each CI step runs; .ci/run makes the clean
virtualenv and calls the targets with it, so a check cannot change in one and not the other."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / ".ci" / "run"
MAKEFILE = ROOT / "Makefile"
CI_STEPS = ["lint", "format-check", "typecheck", "imports", "hadolint", "test", "image"]
"""The steps of .ci/run, in its order."""


def _code(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]


def ci_targets() -> list[str]:
    """The targets .ci/run passes to make, in order."""
    targets: list[str] = []
    for line in _code(CI):
        if not line.startswith("make "):
            continue
        command = re.split(r"\s*(?:\||2>|&&|;)", line)[0]
        targets += [w for w in command.split()[1:] if not w.startswith("-") and "=" not in w]
    return targets


def make(*args: str, venv: Path | str = "/ci/venv") -> subprocess.CompletedProcess[str]:
    program = shutil.which("make")
    assert program is not None, ".ci/run needs make on the machine"
    return subprocess.run(  # noqa: S603 - the Makefile of this repository
        [program, "--no-print-directory", "-f", str(MAKEFILE), f"VENV={venv}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ci_runs_each_of_its_steps_as_a_makefile_target() -> None:
    assert ci_targets() == CI_STEPS
    dry_run = make("-n", *CI_STEPS)
    assert dry_run.returncode == 0, dry_run.stderr
    for command in (
        "/ci/venv/bin/ruff check .",
        "/ci/venv/bin/ruff format --check .",
        "/ci/venv/bin/mypy notifier tests benchmarks",
        "/ci/venv/bin/lint-imports",
        "/ci/venv/bin/hadolint Dockerfile",
        "/ci/venv/bin/pytest -p no:cacheprovider -rs -n auto",
        "bash .ci/image",
    ):
        assert command in dry_run.stdout


def test_ci_runs_no_check_of_its_own_beside_the_targets() -> None:
    code = "\n".join(_code(CI))
    for tool in ("ruff", "mypy", "lint-imports", "hadolint", "pytest"):
        assert not re.search(rf"bin/{tool}\b", code), f".ci/run runs {tool} itself"
    assert ".ci/image" not in code


def test_make_check_is_every_step_but_the_image() -> None:
    every = make("-n", *CI_STEPS[:-1]).stdout
    assert make("-n", "check").stdout == every


def test_targets_quoted_in_the_docs_exist() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    # Lines of shell examples that start with make: its first word is a target (VARIABLE=value
    # settings are upper case).
    quoted = {
        match.group(1)
        for path in docs
        for match in re.finditer(r"^make ([a-z][\w-]*)\b", path.read_text(), re.MULTILINE)
    }
    assert quoted, "the README shows the make targets"
    for target in sorted(quoted):
        assert make("-n", target).returncode == 0, f"make {target} is quoted but has no target"


@pytest.mark.parametrize(("pytest_exit", "make_fails"), [(0, False), (1, True), (5, True)])
def test_make_test_fails_when_pytest_fails_or_collects_nothing(
    tmp_path: Path, pytest_exit: int, make_fails: bool
) -> None:
    fake_pytest = tmp_path / "bin" / "pytest"
    fake_pytest.parent.mkdir()
    fake_pytest.write_text(f"#!/bin/sh\nexit {pytest_exit}\n")
    fake_pytest.chmod(0o755)

    result = make("test", venv=tmp_path)

    assert (result.returncode != 0) == make_fails
    collected_nothing = "make test: pytest collected no tests" in result.stderr
    assert collected_nothing == (pytest_exit == 5)
