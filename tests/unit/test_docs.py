"""What README.md and docs/*.md quote from the code is checked against the code itself: Alembic
revisions, configuration keys (in prose and in TOML examples), metric names, paths and links,
and commands.

Each test collects every quote it understands and fails naming the file, the line and what is
wrong, so a rename in the code shows up as a list of stale sentences rather than a surprised user.
"""

from __future__ import annotations

import argparse
import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

from alembic.script import ScriptDirectory
from pydantic import BaseModel

from notifier.cli import build_parser
from notifier.config import Settings
from notifier.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def lines() -> Iterator[tuple[str, int, str]]:
    for path in DOCS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yield path.relative_to(ROOT).as_posix(), number, line


def fenced(language: str) -> Iterator[tuple[str, int, str]]:
    """Each fenced block in ``language``: file, the line of its first content line, its text."""
    fence = re.compile(rf"^```{language}\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in fence.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            yield path.relative_to(ROOT).as_posix(), line, match.group(1)


def backticked(line: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", line)


# --- Alembic revisions --------------------------------------------------------------------------

_REVISION = re.compile(r"(?<![\w.])(\d{4}(?:_[a-z0-9]+)+)\b")


def test_quoted_revisions_exist() -> None:
    scripts = ScriptDirectory(str(ROOT / "migrations"))
    known = {script.revision for script in scripts.walk_revisions()}
    stale = [
        f"{name}:{number}: revision {revision} is not in migrations/versions"
        for name, number, line in lines()
        for revision in _REVISION.findall(line)
        if revision not in known
    ]
    assert stale == []


# --- configuration keys -------------------------------------------------------------------------


def submodel(annotation: object) -> tuple[type[BaseModel] | None, bool]:
    """The section model inside a field's annotation, and whether it is an array of tables."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    # Optional[...], list[...] and Annotated[...] all keep the model among their arguments.
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        model, listed = submodel(arg)
        if model is not None:
            return model, listed or origin is list
    return None, False


def resolve(path: list[str]) -> str | None:
    """None when ``path`` names a key of the configuration schema, else what is wrong."""
    model: type[BaseModel] | None = Settings
    for depth, part in enumerate(path):
        if model is None:
            return f"{'.'.join(path[:depth])} is a value, not a section"
        field = model.model_fields.get(part)
        if field is None:
            return f"{'.'.join(path[: depth + 1])} is not a configuration key"
        model, _ = submodel(field.annotation)
    return None


def array_sections() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if submodel(field.annotation)[1]}


def table_sections() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if submodel(field.annotation)[0] is not None and name not in array_sections()
    }


def toml_problems(value: object, path: list[str]) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            problem = resolve([*path, key])
            if problem is not None:
                yield problem
            else:
                yield from toml_problems(inner, [*path, key])
    elif isinstance(value, list) and path and submodel_at(path)[0] is not None:
        for item in value:
            yield from toml_problems(item, path)


def submodel_at(path: list[str]) -> tuple[type[BaseModel] | None, bool]:
    model: type[BaseModel] | None = Settings
    listed = False
    for part in path:
        assert model is not None
        model, listed = submodel(model.model_fields[part].annotation)
    return model, listed


def test_quoted_config_keys_exist() -> None:
    # `server.listen` (a table section and its keys) and `[delivery] lease_seconds` or
    # `[[clanforge.account]]` (a header and maybe one key). Dotted names under an array of tables
    # are left alone: `watch.poll_failing` is an event type.
    dotted = re.compile(rf"^(?:{'|'.join(sorted(table_sections()))})(?:\.[a-z_]+)+$")
    header = re.compile(r"^\[\[?([a-z_.]+)\]\]?(?: ([a-z_]+))?$")
    stale = []
    for name, number, line in lines():
        for quote in backticked(line):
            path: list[str] | None = None
            if dotted.match(quote):
                path = quote.split(".")
            elif found := header.match(quote):
                path = found.group(1).split(".") + ([found.group(2)] if found.group(2) else [])
            if path is not None and (problem := resolve(path)) is not None:
                stale.append(f"{name}:{number}: `{quote}`: {problem}")
    assert stale == []


def test_toml_examples_use_only_known_keys() -> None:
    stale = []
    for name, number, text in fenced("toml"):
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            stale.append(f"{name}:{number}: not valid TOML: {exc}")
            continue
        stale += [f"{name}:{number}: {problem}" for problem in toml_problems(document, [])]
    assert stale == []


def test_the_schema_walk_finds_what_is_missing() -> None:
    # The checks above are only as good as resolve() and toml_problems(): both must say no.
    assert resolve(["server", "listen"]) is None
    assert resolve(["clanforge", "account", "burst"]) is None
    missing = "delivery.lease_second is not a configuration key"
    assert resolve(["delivery", "lease_second"]) == missing
    assert resolve(["log", "level", "x"]) == "log.level is a value, not a section"
    document = tomllib.loads('[database]\nurl = "x"\n[[subscription]]\nname = "a"\nchanel = "b"\n')
    assert list(toml_problems(document, [])) == ["subscription.chanel is not a configuration key"]


# --- metric names -------------------------------------------------------------------------------

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def test_quoted_metric_names_are_registered() -> None:
    # The names a scrape shows: a counter only with its _total, as PromQL needs it.
    exposed = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in _SAMPLE_SUFFIXES[family.type]
    }
    assert "notifier_polls_total" in exposed
    stale = [
        f"{name}:{number}: metric {metric} is not registered in notifier/metrics.py"
        for name, number, line in lines()
        for metric in re.findall(r"\bnotifier_[a-z_]+\b", line)
        if metric not in exposed
    ]
    assert stale == []


# --- paths and links ----------------------------------------------------------------------------

_PATH = re.compile(
    r"^(?:notifier|tests|docs|migrations|config|benchmarks|requirements|scripts|\.ci)/[\w./-]*$"
)
# Quoted paths a user makes, not the repository.
_USER_FILES = {"config/notifier.toml"}


def test_quoted_paths_and_links_exist() -> None:
    stale = []
    for name, number, line in lines():
        for quote in backticked(line):
            if _PATH.match(quote) and quote not in _USER_FILES and not (ROOT / quote).exists():
                stale.append(f"{name}:{number}: `{quote}` does not exist")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", line):
            if "://" not in target and not (ROOT / name).parent.joinpath(target).exists():
                stale.append(f"{name}:{number}: link to {target} goes nowhere")
    assert stale == []


# --- commands -----------------------------------------------------------------------------------

# Backticked text that starts with "notifier" but quotes a log line, not a command.
_LOG_LINES = {"running"}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_problem(words: list[str]) -> str | None:
    parser = build_parser()
    used = ["notifier"]
    for word in words:
        choices = subcommands(parser)
        if not choices:
            break
        if word not in choices:
            if used == ["notifier"] and word in _LOG_LINES:
                return None
            return f"{' '.join(used)} has no command {word!r}"
        parser = choices[word]
        used.append(word)
    options = {option for action in parser._actions for option in action.option_strings}
    for word in words:
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", word):
            if option not in options:
                return f"{' '.join(used)} has no option {option}"
    return None


def test_quoted_commands_exist() -> None:
    stale = []
    for name, number, line in lines():
        for quote in backticked(line):
            if quote.startswith("notifier "):
                problem = command_problem(quote.split()[1:])
                if problem is not None:
                    stale.append(f"{name}:{number}: `{quote}`: {problem}")
    for name, number, block in fenced("sh"):
        for offset, line in enumerate(block.splitlines()):
            found = re.match(r"^(?:\.venv/bin/)?notifier (.*)", line)
            if found is not None:
                problem = command_problem(found.group(1).split("#")[0].split())
                if problem is not None:
                    stale.append(f"{name}:{number + offset}: {line.strip()}: {problem}")
    assert stale == []


def test_shell_examples_run_notifier_only_once_it_is_on_the_path() -> None:
    # The README's first commands install into .venv without activating it; a later bare
    # `notifier` works only after `. .venv/bin/activate`.
    stale = []
    activated: set[str] = set()
    for name, number, block in fenced("sh"):
        for offset, line in enumerate(block.splitlines()):
            if re.search(r"(^|\s)(\.|source) \.venv/bin/activate\b", line):
                activated.add(name)
            if re.match(r"^notifier\b", line) and name not in activated:
                stale.append(f"{name}:{number + offset}: {line.strip()}")
    assert stale == []


def test_the_command_walk_finds_what_is_missing() -> None:
    assert command_problem(["watch", "add", "--asid", "N", "[--label", "TEXT]"]) is None
    assert command_problem(["deliveries", "retry", "ID…", "\\|", "--all-dead"]) is None
    assert command_problem(["watch", "purge"]) == "notifier watch has no command 'purge'"
    assert command_problem(["demo", "--faster"]) == "notifier demo has no option --faster"
    assert command_problem(["check-configs"]) == "notifier has no command 'check-configs'"
