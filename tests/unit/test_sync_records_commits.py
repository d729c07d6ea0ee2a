"""A successful deployment records the commits it brought, ``git log previous..revision``
(DORA's lead time per commit): every commit since what was deployed, the revision alone
for a first deployment, nothing for a sync that changed nothing or a dry run. Real Git,
the in-memory swarm."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


def test_a_deployment_records_the_commits_it_brought(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    first = repo.commit("feat: the shop")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)

        def commits_of(request: SyncRequest) -> set[tuple[str, str]]:
            outcome = reconciler.sync(request)
            assert outcome.result == "Succeeded", outcome.message
            assert outcome.operation_id is not None
            op = store.get_operation(outcome.operation_id)
            return {(c.sha, c.subject) for c in op.commits}

        assert commits_of(SyncRequest("app", "dev")) == {(first, "feat: the shop")}
        repo.write("README.md", "docs\n")
        docs = repo.commit("docs: readme")
        repo.compose({"web": service(), "api": service()})
        api = repo.commit("fix: add the api")
        assert commits_of(SyncRequest("app", "dev", dry_run=True)) == set()
        assert commits_of(SyncRequest("app", "dev")) == {
            (api, "fix: add the api"),
            (docs, "docs: readme"),
        }
        op = store.get_operation(store.history(limit=1)[0].id)
        committed = datetime.fromisoformat(repo.git("show", "-s", "--format=%cI", api))
        assert {c.sha: c.committed_at for c in op.commits}[api] == committed
        repo.write("README.md", "more docs\n")
        repo.commit("docs: more")
        assert commits_of(SyncRequest("app", "dev")) == set()  # nothing changed for the app
