"""What the HTTP API needs from the running agent (reconcile/agent/view.py implements it).

The API never touches Docker, Git or the store's internals directly: it reads the state
the agent's loop owns through this port and asks the loop to act by queueing triggers.
Every method is thread-safe (handlers run on the server's threads/event loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from gitswarm.model.agent import Readiness, TriggerRequest

__all__ = ["AgentPort", "Readiness", "TriggerRequest"]


class AgentPort(Protocol):
    def statuses(self) -> list[dict[str, Any]]:
        """Every app × environment: LiveStatus.as_dict() as the loop last saw it."""
        ...

    def status(self, app: str, env: str) -> dict[str, Any]:
        """One app × environment (NotFoundError if unknown)."""
        ...

    def history(self, app: str | None, env: str | None, limit: int) -> Sequence[dict[str, Any]]: ...

    def operation(self, op_id: int) -> dict[str, Any]: ...

    def dora(
        self,
        env: str,
        app: str | None,
        since: datetime,
        until: datetime,
        failure_window: timedelta,
        drift_threshold: timedelta,
    ) -> dict[str, Any]:
        """DORA metrics of ``env`` (``app``) over ``[since, until]``: DoraReport.as_dict()."""
        ...

    def diff(self, app: str, env: str) -> dict[str, Any]:
        """A fresh plan (desired vs deployed, drift) for one app × environment."""
        ...

    def tasks(self, app: str, env: str) -> list[dict[str, Any]]:
        """The tasks of one app × environment's services: service, slot, node, state,
        desired state, error, times (reconcile/tasks.py); for the dashboard."""
        ...

    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        """Queue a reconcile; returns at once with what was queued."""
        ...

    def readiness(self) -> Readiness: ...

    def followed_ref(self) -> str:
        """The Git ref the agent deploys from, e.g. refs/heads/main."""
        ...
