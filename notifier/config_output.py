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


def _mask(node: Any) -> Any:
    if isinstance(node, SecretStr):
        return MASK
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
