"""The one way a URL is shown in messages, logs, listings and the effective configuration.

Webhook URLs (Discord, Teams, Slack incoming webhooks) carry their token in the path or the
query, and any URL may carry ``user:password@``: what is shown is where, never how.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

PathShown = Literal["drop", "mark", "keep"]


def redact_url(url: str, *, path: PathShown = "drop") -> str:
    """``scheme://host[:port]``, never the user info, query or fragment.

    ``path`` says what becomes of the path: ``"drop"`` it; ``"mark"`` a dropped path with ``/…``
    so a reader sees there was more; ``"keep"`` it, only for URLs whose path is known to carry
    no secret (a Clanforge redirect). A relative reference keeps its path alone under "keep".
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    host = parts.hostname or ""
    if not host:
        if path == "keep" and not parts.scheme and not parts.netloc:
            return parts.path
        return "(URL without a host)"
    if ":" in host:
        host = f"[{host}]"
    scheme = f"{parts.scheme}:" if parts.scheme else ""
    origin = f"{scheme}//{host}" + ("" if port is None else f":{port}")
    if path == "keep":
        return origin + parts.path
    if path == "mark" and (parts.path not in ("", "/") or parts.query or parts.fragment):
        return origin + "/…"
    return origin
