"""The agent's HTTP side (an edge above reconcile/): JSON API, webhooks, probes, /metrics.

It never talks to Docker, Git or the store itself: it reads and triggers the running
agent through ``port.AgentPort`` and writes the audit trail through a callable.
"""

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
    "WebhookSecrets",
    "hash_token",
    "settings_from_mapping",
]
