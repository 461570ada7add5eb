"""Configuration files for `notifier run` and the CLI, written as an operator writes them: TOML
text, built from the few blocks every end-to-end test repeats (the fakes' addresses, fast polls,
the loopback network, a list of watches)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from notifier.testing.fake_slack import FAKE_TOKEN

TomlValue = str | int | float | bool | list[str] | list[int] | list[float]


def _value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # A JSON string or array of strings and numbers is the same TOML value.
    return json.dumps(value, ensure_ascii=False)


def table(header: str, **keys: TomlValue | None) -> str:
    """``[header]`` and its keys, one a line; a key given None is left out."""
    lines = [f"[{header}]"]
    lines += [f"{key} = {_value(value)}" for key, value in keys.items() if value is not None]
    return "\n".join(lines) + "\n"


def tables(header: str, entries: Iterable[Mapping[str, TomlValue | None]]) -> str:
    """``[[header]]`` once per entry: watches, subscriptions, accounts."""
    return "\n".join(table(f"[{header}]", **entry) for entry in entries)


LOOPBACK_NETWORK = table("network", allow_private=["127.0.0.0/8", "::1/128"])
"""The fakes listen on 127.0.0.1, which the SSRF guard refuses unless the operator allows it."""


def database(url_or_file: str | Path) -> str:
    """``[database]`` at a URL, or at a SQLite file given as a path."""
    url = url_or_file if isinstance(url_or_file, str) else f"sqlite+aiosqlite:///{url_or_file}"
    return table("database", url=url)


def clanforge(base_url: str, access_key: str, secret_key: str, **extra: TomlValue) -> str:
    """``[clanforge]`` pointed at a fake; keys may be ``${VARIABLES}`` the run's environment
    fills in."""
    return table(
        "clanforge", base_url=base_url, access_key=access_key, secret_key=secret_key, **extra
    )


def busy_clanforge(
    base_url: str, access_key: str, secret_key: str, requests_per_second: float
) -> str:
    """``[clanforge]`` for a run polling hundreds of watches: 16 connections, a 2 s timeout,
    and a rate limit the fake will not trip."""
    return clanforge(
        base_url,
        access_key,
        secret_key,
        timeout_seconds=2,
        max_concurrency=16,
        requests_per_second=requests_per_second,
    )


def fake_slack(base_url: str) -> str:
    """``[slack]`` pointed at a fake Slack, with its token and no pause between posts to a
    channel (the pacing is tested apart)."""
    return table("slack", bot_token=FAKE_TOKEN, base_url=base_url, channel_interval_seconds=0)


def poll_every(seconds: float) -> str:
    """``[poll]`` with one interval for waiting and running jobs alike."""
    return table("poll", interval_seconds=seconds, running_interval_seconds=seconds)


def watches(
    account_service_id: int,
    image_version_ids: Iterable[int],
    label: Callable[[int], str] = lambda ivid: f"build {ivid}",
) -> str:
    """A ``[[watch]]`` per image version, labelled by ``label``."""
    return tables(
        "watch",
        (
            {
                "account_service_id": account_service_id,
                "image_version_id": ivid,
                "label": label(ivid),
            }
            for ivid in image_version_ids
        ),
    )


def write_config(path: Path, *blocks: str) -> Path:
    """``path`` holding ``blocks``, a blank line apart; returns ``path``."""
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def account(
    name: str, access_key: str, secret_key: str, account_service_ids: list[int], **extra: TomlValue
) -> str:
    """A ``[[clanforge.account]]``: another key pair, for these account services only."""
    return tables(
        "clanforge.account",
        [
            {
                "name": name,
                "access_key": access_key,
                "secret_key": secret_key,
                "account_service_ids": account_service_ids,
                **extra,
            }
        ],
    )
