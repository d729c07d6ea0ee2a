"""The agent's settings (``agent:`` in the agent config; cli/serve.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentSettings:
    """Every setting of the loop, with its default (see `gitswarm serve --help`)."""

    poll_interval: float = 30.0  # seconds between asking the remote for its head
    poll_jitter: float = 0.2  # +/- this fraction of the interval, so agents spread out
    drift_interval: float = 120.0  # periodic full drift check (events catch most sooner)
    lease_ttl: float = 15.0  # the leader's lease; a standby takes over after it runs out
    heal_limit: int = 3  # the same drift healed this many times ...
    heal_window: float = 600.0  # ... within this many seconds: stop healing, alert
    environments: tuple[str, ...] = ()  # only these environments (empty: all)
    workers: int = 4
    git_backoff_max: float = 300.0
    events: bool = True  # watch Docker events for drift
    shutdown_grace: float = 30.0  # SIGTERM: a running step (not a wait) may finish this long

    def watches(self, env: str) -> bool:
        """Whether this agent deploys ``env`` (``environments`` empty: every one)."""
        return not self.environments or env in self.environments


__all__ = ["AgentSettings"]
