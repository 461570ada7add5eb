"""The wheel (and so the image) carries every package of the tree: `[tool.setuptools] packages`
is an explicit list, and an editable install works without it, so a new subpackage left out
would only break installed copies."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_in_the_tree_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    listed = set(setuptools["packages"])
    # Where a package lives when it is not at its own name's path (notifier.migrations).
    mapped: dict[str, Path] = {
        name: ROOT / path for name, path in setuptools.get("package-dir", {}).items()
    }

    def directory(package: str) -> Path:
        for name, path in mapped.items():
            if package == name or package.startswith(name + "."):
                return path.joinpath(*package[len(name) :].split(".")[1:])
        return ROOT.joinpath(*package.split("."))

    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "notifier").rglob("__init__.py")
    }
    for name, path in mapped.items():
        in_tree |= {
            ".".join([name, *init.parent.relative_to(path).parts])
            for init in path.rglob("__init__.py")
        }
    assert sorted(in_tree - listed) == [], "add these to [tool.setuptools] packages"
    assert sorted(p for p in listed if not (directory(p) / "__init__.py").exists()) == []
