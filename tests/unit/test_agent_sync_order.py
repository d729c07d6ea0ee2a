"""After a commit, the apps it touched are synced before the others (many-app repos)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


def test_the_touched_app_is_taken_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    for name in ("aaa", "bbb", "zzz"):
        repo.write(f"apps/{name}.yml", "services:\n  web:\n    image: 127.0.0.1:5000/busybox:1\n")
        repo.write(f"applications/{name}.yml", f"stack: s-{name}\nfiles: [apps/{name}.yml]\n")
    repo.commit("four apps")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        agent = Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: swarm),
            settings=AgentSettings(events=False),
        )
        agent.git.check(TriggerRequest("poll"))  # the first head: every app is "touched"
        agent.state.queue.pending.clear()
        agent.state.queue.urgent.clear()
        repo.write("apps/zzz.yml", "services:\n  web:\n    image: 127.0.0.1:5000/busybox:2\n")
        repo.commit("zzz moves")
        agent.git.check(TriggerRequest("poll"))
        order = [key for key, _ in agent.state.queue.take_ready()]
    assert order[0] == ("sync", "zzz", "dev")
    assert set(order) == {("sync", n, "dev") for n in ("app", "aaa", "bbb", "zzz")}


def test_the_drift_check_after_a_sync_reuses_that_sync_s_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    head = repo.commit("one app")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm)
        renders: list[tuple[str, str, str | None]] = []
        real_render = reconciler.render

        def counting(app: str, env: str, revision: str | None, **kw: Any) -> Any:
            renders.append((app, env, revision))
            return real_render(app, env, revision, **kw)

        monkeypatch.setattr(reconciler, "render", counting)
        agent = Agent(
            source=source, store=store, reconciler=reconciler, settings=AgentSettings(events=False)
        )
        agent.git.check(TriggerRequest("poll"))
        for key, request in agent.state.queue.take_ready():
            agent.run_task(key, request)
        assert renders == [("app", "dev", head)]  # the sync
        agent.run_task(("drift", "app", "dev"), TriggerRequest("agent"))
        assert renders == [("app", "dev", head)]  # the drift check rendered nothing again
        status = store.get_status("app", "dev")
        assert status is not None and status.sync == "Synced" and status.revision == head
