"""Ordered applications on the real swarm: a database application and an application
that ``depends_on`` it, both changed by one commit. The dependent is not updated until
the database has converged — the store's timestamps show the order — and not at all
while the database does not converge; once it does, the dependent follows.

Both paths: the agent (its queue holds the dependent back) and `gitswarm sync --env`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import Cleaner
from tests.gitops import Cli, GitOpsRepo, _dump, service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import running_tasks

pytestmark = pytest.mark.swarm

SLOW_START = 4  # seconds the database takes to become healthy


def _database(version: str, *, healthy: bool = True) -> dict[str, Any]:
    """A service that turns healthy only SLOW_START seconds after it starts (or never)."""
    ready = f"sleep {SLOW_START}; : > /tmp/ready; " if healthy else ""
    return service(
        command=["sh", "-c", f"{ready}exec sleep 3600"],
        environment={"DB_VERSION": version},
        healthcheck={
            "test": ["CMD", "sh", "-c", "test -f /tmp/ready"],
            "interval": "1s",
            "timeout": "2s",
            "retries": 2,
            # failures while it starts do not count (else Swarm kills it before it is up)
            "start_period": "30s",
        },
    )


def _files(
    stack: str, db_version: str, web_version: str, *, healthy: bool = True
) -> dict[str, str]:
    settings = {
        "project": "t",
        "application": {"name": "app", "stack": stack, "depends_on": ["db"]},
        "targets": {"local": {}},
        "environments": {"dev": {"target": "local", "sync": {"prune": True, "health_timeout": 20}}},
    }
    web = service(environment={"WEB_VERSION": web_version})
    return {
        "gitswarm.yml": _dump(settings),
        "applications/db.yml": _dump({"stack": f"{stack}db", "files": ["db/docker-compose.yml"]}),
        "db/docker-compose.yml": _dump(
            {"services": {"main": _database(db_version, healthy=healthy)}}
        ),
        "base/docker-compose.yml": _dump({"services": {"web": web}}),
        "environments/dev/docker-compose.yml": "services: {}\n",
        "environments/dev/.env": "# variables\n",
    }


@pytest.fixture()
def db_stack(stack_name: str, cleaner: Cleaner) -> Iterator[str]:
    yield f"{stack_name}db"
    cleaner.submit(f"{stack_name}db")


def _op(rig: AgentRig, app: str, revision: str) -> Any:
    assert rig.store is not None
    ops = [
        o
        for o in rig.store.history(app=app, env="dev", limit=100)
        if o.kind == "sync" and o.revision == revision and o.finished_at is not None
    ]
    assert ops, f"no finished sync of {app} at {revision[:12]}"
    return ops[-1]


def _converged(rig: AgentRig, app: str, revision: str) -> Any:
    def check() -> bool:
        assert rig.store is not None
        status = rig.store.get_status(app, "dev")
        return bool(status and status.revision == revision and status.health == "Healthy")

    return check


def _env_of(client: docker.DockerClient, service_name: str) -> list[str]:
    spec = client.api.inspect_service(service_name)["Spec"]
    env: list[str] = spec["TaskTemplate"]["ContainerSpec"].get("Env") or []
    return env


def test_the_agent_updates_the_dependent_only_after_the_database_has_converged(
    rig: AgentRig, db_stack: str, docker_client: docker.DockerClient
) -> None:
    rig.wc = rig.remote.clone()
    first = rig.wc.commit("both", files=_files(rig.stack, "1", "1"))
    rig.wc.push()
    with running_rig(rig, workers=4):
        wait_for(_converged(rig, "db", first), 90)
        wait_for(_converged(rig, "app", first), 60)
        # Even the first deploy: the database was healthy before the dependent started.
        assert _op(rig, "app", first).started_at >= _op(rig, "db", first).finished_at

        second = rig.wc.commit("both change", files=_files(rig.stack, "2", "2"))
        rig.wc.push()
        assert rig.github_push(second) == 202
        wait_for(_converged(rig, "app", second), 90)

        db, app = _op(rig, "db", second), _op(rig, "app", second)
        assert db.result == app.result == "Succeeded"
        # The database's sync waited for its health (the slow start) ...
        assert (db.finished_at - db.started_at).total_seconds() >= SLOW_START - 1
        # ... and the dependent's sync began only after it ended.
        assert app.started_at >= db.finished_at, (db.started_at, db.finished_at, app.started_at)
        assert "WEB_VERSION=2" in _env_of(docker_client, f"{rig.stack}_web")

        # A database that does not converge: the dependent is not updated at all.
        third = rig.wc.commit("db broken", files=_files(rig.stack, "3", "3", healthy=False))
        rig.wc.push()
        assert rig.github_push(third) == 202

        def db_failed() -> bool:
            assert rig.store is not None
            ops = rig.store.history(app="db", env="dev", limit=20)
            return any(o.revision == third and o.result == "Failed" for o in ops)

        wait_for(db_failed, 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 60)
        assert rig.store is not None
        held = rig.store.get_status("app", "dev")
        assert held is not None
        assert (held.revision, held.reason) == (second, "DependencyNotReady"), held
        assert "'db'" in held.message, held.message
        ops = rig.store.history(app="app", env="dev", limit=20)
        assert not [o for o in ops if o.revision == third and o.kind == "sync"]
        assert "WEB_VERSION=2" in _env_of(docker_client, f"{rig.stack}_web")
        assert len(running_tasks(docker_client, f"{rig.stack}_web")) == 1

        # The database fixed: it converges, and then the dependent follows.
        fourth = rig.wc.commit("db fixed", files=_files(rig.stack, "4", "3"))
        rig.wc.push()
        assert rig.github_push(fourth) == 202
        wait_for(_converged(rig, "app", fourth), 90)
        assert _op(rig, "app", fourth).started_at >= _op(rig, "db", fourth).finished_at
        assert "WEB_VERSION=3" in _env_of(docker_client, f"{rig.stack}_web")


def test_sync_env_updates_the_dependent_only_after_the_database_has_converged(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    db_stack: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name)
    for path, text in _files(stack_name, "1", "1").items():
        repo.write(path, text)
    repo.commit("both")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    for path, text in _files(stack_name, "2", "2").items():
        repo.write(path, text)
    head = repo.commit("both change")

    result = cli("sync", "--env", "dev", "--repo", str(repo.path), "--no-wait")

    assert result.exit_code == 0, result.output
    history = cli.json("history", "--env", "dev")["operations"]
    db, app = (
        next(o for o in history if o["app"] == name and o["revision"] == head)
        for name in ("db", "app")
    )
    db_started, db_finished, app_started = (
        dt.datetime.fromisoformat(x)
        for x in (db["started_at"], db["finished_at"], app["started_at"])
    )
    # --no-wait, yet the database's health was waited for before the dependent began.
    assert (db_finished - db_started).total_seconds() >= SLOW_START - 1, db
    assert app_started >= db_finished, (db, app)
    assert "WEB_VERSION=2" in _env_of(docker_client, f"{stack_name}_web")
