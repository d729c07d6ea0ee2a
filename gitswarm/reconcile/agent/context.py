"""What every part of the agent is given: its edges, its settings, its clock and the one
state (state.py). Built once by ``Agent`` (agent.py) and passed to each part, so a part
names what it uses and nothing is global.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from gitswarm.errors import GitswarmError, Reason
from gitswarm.model.config import SyncPolicy, Target
from gitswarm.model.events import Event, EventKind
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent.settings import AgentSettings
from gitswarm.reconcile.agent.state import AgentState
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler, SyncOutcome
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
    notifier: Notifier | None
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

    def count(self, outcome: SyncOutcome) -> None:
        self.metrics.sync_operations.labels(
            outcome.app, outcome.env, outcome.result, outcome.reason or ""
        ).inc()
        if outcome.result == "Succeeded":
            self.metrics.last_success.labels(outcome.app, outcome.env).set(time.time())
        with contextlib.suppress(GitswarmError):
            status = self.store.get_status(outcome.app, outcome.env)
            if status is not None:
                self.metrics.set_state(outcome.app, outcome.env, status.sync, status.health)

    def notify(
        self,
        kind: EventKind,
        app: str,
        env: str,
        revision: str | None,
        message: str,
        reason: Reason | None,
        *,
        dedupe: str | None = None,
    ) -> None:
        if self.notifier is None:
            return
        event = Event(kind, app, env, revision, message, reason)
        fingerprint = event.fingerprint + (f"|{dedupe}" if dedupe else "")
        try:
            fresh = self.store.record_notification(app, env, kind, fingerprint)
        except GitswarmError:
            fresh = True
        if fresh:
            self.notifier.send(event)
            self.metrics.notifications.labels("queued").inc()


__all__ = ["AgentContext"]
