"""The agent's drift check costs one Docker read per app: the service listing alone.

A drift round checks every app × environment; with 100 stacks, listing configs and
secrets as well tripled the round's Docker calls for nothing (drift is about services).
bench/ measures the round on a real swarm; this pins down the reads and that a manual
change is still seen.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ObjectState, ServiceState
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


@dataclass
class CountingSwarm(FakeSwarm):
    reads: Counter[str] = field(default_factory=Counter)

    def services(self, stack: str) -> list[ServiceState]:
        self.reads["services"] += 1
        return super().services(stack)

    def objects(self, stack: str) -> list[ObjectState]:
        self.reads["objects"] += 1
        return super().objects(stack)


def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_drift_check_lists_services_only_and_still_sees_a_manual_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service(), "api": service()})
    repo.commit("first")
    swarm = CountingSwarm()
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo.path))
    reconciler = Reconciler(source, store, lambda _target: swarm)
    assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
    settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    try:
        with agent.running():
            assert agent.wait_leader(10)
            until(lambda: agent.config is not None and agent.idle())
            writes = swarm.writes
            swarm.reads.clear()
            swarm.scale("shop_web", 3)
            agent.enqueue(("drift", "app", "dev"), TriggerRequest("agent"))
            until(lambda: bool((s := store.get_status("app", "dev")) and s.drift))
            until(agent.idle)
        assert swarm.reads == Counter({"services": 1})
        assert swarm.writes == writes  # self_heal is off: reported, not reverted
        status = store.get_status("app", "dev")
        assert status is not None and status.sync == "OutOfSync"
        assert "deploy.replicas" in status.message
        assert store.history(app="app", env="dev", limit=5)[0].kind == "drift"
    finally:
        store.close()
