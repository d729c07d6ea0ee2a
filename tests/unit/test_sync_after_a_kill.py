"""What a sync leaves behind when its process dies, and how the next one deals with it:
a garbage collection cut short (the agent killed during it, the engine refusing a
removal for a moment) is finished by the next sync even when that has nothing to deploy;
the sync lock's lease is the Reconciler's (`gitswarm serve`: twice lease_ttl), so a dead
sync keeps its successor out for seconds. The real-swarm tests are
tests/integration/test_faults_agent_kill.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.store.locks import sync_lock
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

STACK = "gc"


@dataclass
class CutShortSwarm(FakeSwarm):
    """Removes nothing while ``refuse`` (as a GC that never got to its removals)."""

    refuse: bool = False

    def remove_object(self, kind: str, object_id: str) -> bool:
        if self.refuse:
            return False
        return super().remove_object(kind, object_id)


def test_a_sync_with_nothing_to_deploy_collects_what_a_cut_short_gc_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", STACK)
    repo.sync = {"prune": True, "health_timeout": 30, "keep_versions": 0}
    repo.write_settings()
    swarm = CutShortSwarm()
    web = service(configs=[{"source": "conf", "target": "/etc/conf"}])
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
        for text in ("v1\n", "v2\n"):
            repo.write("base/app.conf", text)
            repo.compose({"web": service(**web)}, configs={"conf": {"file": "./app.conf"}})
            repo.commit(f"config {text.strip()}")
            swarm.refuse = text == "v2\n"  # the GC after v2 is cut short
            assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        assert len(swarm.objects(STACK)) == 2  # v1 left behind
        swarm.refuse = False
        again = reconciler.sync(SyncRequest("app", "dev"))
        assert again.result == "Succeeded" and again.plan is not None and again.plan.empty
        (left,) = swarm.objects(STACK)
        assert left.name.startswith(f"{STACK}_conf_")
        writes = swarm.writes
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        assert swarm.writes == writes  # nothing more to collect: no write at all


@dataclass
class WatchedSwarm(FakeSwarm):
    """Notes the sync lock's lease while the deploy runs."""

    store: Store | None = None
    leases: list[float] = field(default_factory=list)

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: Any) -> None:
        assert self.store is not None
        info = self.store.lock_holder(sync_lock("app", "dev"))
        assert info is not None
        self.leases.append((info.expires_at - info.acquired_at).total_seconds())
        super().deploy(stack, compose_yaml, resolve_image=resolve_image)


def test_the_sync_lock_lease_is_the_reconcilers_so_a_dead_syncs_lock_frees_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gitswarm serve` sets it to twice the agent's lease_ttl: an agent killed mid-sync
    keeps its successor out for seconds, not a fixed 30 s."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", STACK)
    repo.compose({"web": service()})
    repo.commit("one service")
    with Store(str(tmp_path / "state.db")) as store:
        swarm = WatchedSwarm(store=store)
        source = RepoSource.open(str(repo.path))
        assert Reconciler(source, store, lambda _t: swarm).sync_lease == 30.0  # the default
        reconciler = Reconciler(source, store, lambda _t: swarm, sync_lease=4.0)
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        assert swarm.leases == [pytest.approx(4.0, abs=0.5)]
