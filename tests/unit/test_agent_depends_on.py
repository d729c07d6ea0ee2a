"""The agent keeps the depends_on order: its queue does not start a dependent's sync
while a dependency's is pending or running; a dependent whose dependency did not
converge is held (status DependencyNotReady, nothing applied) and synced again when
the dependency converges. (On the real swarm: tests/integration/test_depends_on_swarm.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

DB = "services:\n  main:\n    image: 127.0.0.1:5000/db:{tag}\n"


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitOpsRepo:
    """app (gitswarm.yml) depends on db (applications/db.yml)."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    settings = (repo.path / "gitswarm.yml").read_text()
    repo.write(
        "gitswarm.yml", settings.replace("application:\n", "application:\n  depends_on: [db]\n")
    )
    repo.compose({"web": service()})
    repo.write("applications/db.yml", "stack: shop-db\nfiles: [db/docker-compose.yml]\n")
    repo.write("db/docker-compose.yml", DB.format(tag=1))
    return repo


@pytest.fixture()
def swarm() -> FakeSwarm:
    return FakeSwarm()


@pytest.fixture()
def agent(repo: GitOpsRepo, swarm: FakeSwarm, tmp_path: Path) -> Iterator[Agent]:
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        yield Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: swarm),
            settings=AgentSettings(events=False),
        )


def _round(agent: Agent) -> list[tuple[str, ...]]:
    """One dispatch: what the queue hands out now (each run to its end, in turn)."""
    with agent.state.wake:
        ready = agent._take_ready()
    for key, request in ready:
        agent.run_task(key, request)
    return [key for key, _ in ready]


def test_the_dependent_waits_while_its_dependency_is_pending_or_running(
    repo: GitOpsRepo, agent: Agent
) -> None:
    repo.commit("both")
    agent.git.check(TriggerRequest("poll"))
    queue = agent.state.queue
    with agent.state.wake:
        # Both are pending: only db is handed out; app stays pending while db runs.
        assert [k for k, _ in agent._take_ready()] == [("sync", "db", "dev")]
        assert [k for k, _ in agent._take_ready()] == []
        assert ("sync", "app", "dev") in queue.pending
        queue.done(("sync", "db", "dev"))
        assert [k for k, _ in agent._take_ready()] == [("sync", "app", "dev")]


def test_a_commit_to_both_applies_the_dependency_first(
    repo: GitOpsRepo, agent: Agent, swarm: FakeSwarm
) -> None:
    head = repo.commit("both")
    agent.git.check(TriggerRequest("poll"))
    assert _round(agent) == [("sync", "db", "dev")]
    assert _round(agent) == [("sync", "app", "dev")]
    deploys = [line.split()[1] for line in swarm.log if line.startswith("deploy ")]
    assert deploys == ["shop-db_main", "shop_web"]
    ops = sorted(agent.store.history(env="dev", limit=10), key=lambda o: o.id)
    assert [(o.app, o.revision) for o in ops] == [("db", head), ("app", head)]
    assert ops[1].started_at >= ops[0].finished_at  # type: ignore[operator]


def test_a_dependent_is_held_until_its_dependency_converges(
    repo: GitOpsRepo, agent: Agent, swarm: FakeSwarm
) -> None:
    first = repo.commit("both")
    agent.git.check(TriggerRequest("poll"))
    _round(agent), _round(agent)
    swarm.failing_images.add("127.0.0.1:5000/db:2")
    repo.write("db/docker-compose.yml", DB.format(tag=2))
    repo.compose({"web": service(image="127.0.0.1:5000/busybox:2")})
    second = repo.commit("both change, db fails")
    agent.git.check(TriggerRequest("poll"))
    _round(agent)  # db: fails
    _round(agent)  # app: held
    held = agent.store.get_status("app", "dev")
    assert held is not None
    assert (held.revision, held.reason) == (first, "DependencyNotReady")
    assert held.message == (
        "waiting for 'db' (Degraded, Failed: TasksFailing) to converge before this "
        "application is applied"
    )
    assert not [o for o in agent.store.history(app="app", env="dev") if o.revision == second]
    web = swarm.services("shop")[0].spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert web.startswith("127.0.0.1:5000/busybox:1")

    repo.write("db/docker-compose.yml", DB.format(tag=3))
    third = repo.commit("db fixed")
    agent.git.check(TriggerRequest("poll"))
    assert _round(agent) == [("sync", "db", "dev")]  # db converges: app is queued again
    assert _round(agent) == [("sync", "app", "dev")]
    status = agent.store.get_status("app", "dev")
    assert status is not None
    assert (status.revision, status.health, status.reason) == (third, "Healthy", None)
    web = swarm.services("shop")[0].spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert web.startswith("127.0.0.1:5000/busybox:2")
