"""The effective configuration as ``check-config`` prints it: TOML, every secret masked."""

from __future__ import annotations

from typing import Any

import tomli_w
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from notifier.config import Settings
from notifier.core.urls import redact_url

MASK = "********"


def _drop_none(node: Any) -> Any:
    # TOML has no null: an unset optional key is simply left out.
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node


def render_effective_config(settings: Settings) -> str:
    data = settings.model_dump(mode="python")
    # SecretStr values dump as SecretStr objects: mask every one of them.
    data = _mask(data)
    data["database"]["url"] = make_url(settings.database.url).render_as_string(hide_password=True)
    for subscription in data["subscription"]:
        if subscription.get("webhook_url"):
            subscription["webhook_url"] = redact_url(subscription["webhook_url"], path="mark")
    return tomli_w.dumps(_drop_none(data))


def config_warnings(settings: Settings) -> list[str]:
    """What is valid but probably not meant, one line each: ``check-config`` prints them on
    stderr and still exits 0."""
    warnings = [
        f"{key} is set but empty"
        for key, value in _secrets(settings.model_dump(mode="python"), "")
        if not value.get_secret_value()
    ]
    for sub in settings.subscription:
        if sub.kind == "webhook" and sub.body_template is None and not sub.signing_secrets:
            warnings.append(
                f"subscription {sub.name!r} sends unsigned webhooks: its receiver cannot tell "
                "them from forged ones (set webhook_secret)"
            )
    return warnings


def _secrets(node: Any, path: str) -> list[tuple[str, SecretStr]]:
    if isinstance(node, SecretStr):
        return [(path, node)]
    if isinstance(node, dict):
        return [
            found
            for key, value in node.items()
            for found in _secrets(value, f"{path}.{key}" if path else key)
        ]
    if isinstance(node, list):
        return [found for i, value in enumerate(node) for found in _secrets(value, f"{path}[{i}]")]
    return []


def _mask(node: Any) -> Any:
    if isinstance(node, SecretStr):
        # An empty secret shown as ******** read as one that is set: show it as it is.
        return MASK if node.get_secret_value() else ""
    if isinstance(node, dict):
        return {
            k: _without_userinfo(v) if k.endswith("url") and isinstance(v, str) else _mask(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_mask(v) for v in node]
    return node


def _without_userinfo(url: str) -> str:
    """A base URL's ``user:password@`` masked: the rest says where it points."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://{MASK}@{authority.rpartition('@')[2]}{slash}{path}"
