"""A commit syncs every app × env at one revision: the repository settings are read
once per revision, not once per app (bench/ measured a commit in a repository of 100
apps: re-reading applications/*.yml for every app was 80% of each sync) — and not at
all for a revision whose gitswarm.yml and applications/*.yml are those of one read
before (1,000 files at 1,000 apps; issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gitswarm.reconcile.settings as settings_module
from gitswarm.model.config import RepoConfig
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


def test_the_settings_are_read_once_per_revision_and_a_bad_one_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    loads: list[str | None] = []
    real = settings_module.load_config

    def counting(tree: Any) -> RepoConfig:
        loads.append(tree.revision)
        return real(tree)

    monkeypatch.setattr(settings_module, "load_config", counting)
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    repo.write("applications/other.yml", "stack: shop-other\n")
    first = repo.commit("two apps")
    swarm = FakeSwarm()
    store = Store(str(tmp_path / "state.db"))
    try:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)

        for app in ("app", "other", "app"):
            outcome = reconciler.sync(SyncRequest(app, "dev"))
            assert outcome.result == "Succeeded", outcome.message
        assert loads == [first]
        assert {s.name for s in swarm.services("shop")} == {"shop_web"}
        assert {s.name for s in swarm.services("shop-other")} == {"shop-other_web"}

        repo.compose({"web": service(), "api": service()})
        repo.commit("api")  # the settings' files as they were: not read again (issue 18)
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        assert reconciler.sync(SyncRequest("other", "dev")).result == "Succeeded"
        assert loads == [first]
        assert {s.name for s in swarm.services("shop")} == {"shop_web", "shop_api"}

        repo.write("applications/other.yml", "stack: shop-other2\n")
        second = repo.commit("other moves")
        assert reconciler.sync(SyncRequest("other", "dev")).result == "Succeeded"
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        assert loads == [first, second]
        assert {s.name for s in swarm.services("shop-other2")} == {
            "shop-other2_web",
            "shop-other2_api",
        }

        repo.write("gitswarm.yml", "project: [not, a, name]\n")
        bad = repo.commit("broken settings")
        for _ in range(2):
            outcome = reconciler.sync(SyncRequest("app", "dev"))
            assert (outcome.result, outcome.reason) == ("Failed", "ConfigInvalid")
        assert loads == [first, second, bad, bad]
    finally:
        store.close()
