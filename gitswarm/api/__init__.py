"""The agent's HTTP side (an edge above reconcile/): JSON API, webhooks, probes, /metrics.

It never talks to Docker, Git or the store itself: it reads and triggers the running
agent through ``port.AgentPort`` and writes the audit trail through a callable.

Public API::

    app = create_app(agent, ApiSettings(...), metrics)
    handle = serve_in_thread(app, settings.host, settings.port)   # handle.url, handle.stop()
"""

from gitswarm.api.app import create_app
from gitswarm.api.server import ServerHandle, serve_in_thread
from gitswarm.api.settings import (
    ApiSettings,
    Grant,
    WebhookSecrets,
    hash_token,
    settings_from_mapping,
)

__all__ = [
    "ApiSettings",
    "Grant",
    "ServerHandle",
    "WebhookSecrets",
    "create_app",
    "hash_token",
    "serve_in_thread",
    "settings_from_mapping",
]
