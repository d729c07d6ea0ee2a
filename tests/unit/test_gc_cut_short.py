"""Garbage collection that a sync did not finish (the agent killed during its GC, the
engine refusing a removal for a moment) is finished by the next sync, even when that
sync has nothing to deploy. The real-swarm test is tests/integration/
test_faults_agent_kill.py (stage gc)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
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
