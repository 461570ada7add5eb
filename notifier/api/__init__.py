"""The HTTP server: admin REST API, OpenAPI document, status page, health and metrics.

Each route module exposes ``register(app, deps)``; :data:`REGISTRARS` lists the ones the
service serves, so a new module (the Slack slash command, say) plugs in with one line here.
"""

from __future__ import annotations

from notifier.api import (
    health,
    openapi,
    rest,
    slack_commands,
    slack_interactions,
    status_page,
)
from notifier.api.deps import ApiDeps, Registrar

REGISTRARS: tuple[Registrar, ...] = (
    health.register,
    rest.register,
    openapi.register,
    status_page.register,
    slack_commands.register,
    slack_interactions.register,
)

__all__ = ["REGISTRARS", "ApiDeps", "Registrar"]
