"""The lock files agree with pyproject.toml: a dependency added or a range moved there without
`bash scripts/lock` fails here, not in the image build or in CI's install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    """Name to pinned version; every pin must carry at least one hash for --require-hashes."""
    found: dict[str, str] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text(encoding="utf-8"))
    for entry in entries:
        match = _PIN.match(entry)
        if match is None:
            continue
        assert "--hash=sha256:" in entry, f"{path.name}: {match.group(1)} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def requirements(*groups: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    texts = list(PYPROJECT["build-system"]["requires"])
    for group in groups:
        texts += project["dependencies"] if group == "" else project["optional-dependencies"][group]
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize(
    ("lock", "groups"),
    [(RUNTIME, ("",)), (DEV, ("", "test", "bench", "lint"))],
    ids=["runtime", "dev"],
)
def test_every_direct_requirement_is_pinned_within_its_range(
    lock: Path, groups: tuple[str, ...]
) -> None:
    pinned = pins(lock)
    wrong = []
    for requirement in requirements(*groups):
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            wrong.append(f"{requirement} (locked: {version})")
    assert wrong == [], f"{lock.name} is stale, run `bash scripts/lock`: {wrong}"


def test_ci_tests_the_versions_the_image_runs() -> None:
    runtime, dev = pins(RUNTIME), pins(DEV)
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert differ == {}
