"""The example configurations in config/ stay valid as the schema changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ENV = {
    "CLANFORGE_ACCESS_KEY": "ak",
    "CLANFORGE_SECRET_KEY": "sk",
    "SLACK_BOT_TOKEN": "xoxb-example",
    "CHATOPS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "NOTIFIER_ADMIN_TOKEN": "admin",
    "NOTIFIER_DB_PASSWORD": "pw",
}


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIG_DIR.glob("*.example.toml")))
def test_example_configuration_is_valid(name: str) -> None:
    settings = load_config(CONFIG_DIR / name, ENV)
    assert settings.subscription, "an example without a subscription shows nothing useful"
