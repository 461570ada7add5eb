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
    "DISCORD_WEBHOOK_TOKEN": "discord-token",
    "SLACK_OPS_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "SLACK_SIGNING_SECRET": "signing",
}
EXAMPLES = sorted(p.name for p in CONFIG_DIR.glob("*.example.toml"))


def uncommented(text: str) -> str:
    """The example with its settings to uncomment ("#" and no space) uncommented."""
    return "\n".join(
        line[1:] if line.startswith("#") and line[1:2] not in (" ", "", "#") else line
        for line in text.splitlines()
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configuration_sends_nowhere_as_shipped(name: str) -> None:
    settings = load_config(CONFIG_DIR / name, ENV)
    assert settings.subscription == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configuration_is_valid_with_its_subscriptions_uncommented(
    name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(uncommented((CONFIG_DIR / name).read_text(encoding="utf-8")), "utf-8")
    settings = load_config(path, ENV)
    assert settings.subscription, "an example without a subscription shows nothing useful"
