"""What every part of the agent is given: its edges, its settings, its clock and the one
state (state.py). Built once by ``Agent`` (agent.py) and passed to each part, so a part
names what it uses and nothing is global.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitswarm.model.config import SyncPolicy, Target
from gitswarm.reconcile.agent.settings import AgentSettings
from gitswarm.reconcile.agent.state import AgentState
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.client import Swarm


@dataclass(frozen=True)
class AgentContext:
    source: RepoSource
    store: Store
    reconciler: Reconciler
    settings: AgentSettings
    metrics: Metrics
    swarm_for: Callable[[Target], Swarm]
    monotonic: Callable[[], float]
    state: AgentState

    @property
    def holder(self) -> str:
        return self.reconciler.holder

    def policy(self, app: str, env: str) -> SyncPolicy:
        """The sync policy of app x env at the head the agent last saw (defaults when
        unknown)."""
        config = self.state.config
        if config is None:
            return SyncPolicy()
        try:
            return config.sync_policy(config.application(app), config.environment(env))
        except KeyError:
            return SyncPolicy()


__all__ = ["AgentContext"]
