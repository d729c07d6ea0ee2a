"""A deploy that does not become healthy fails with a stable reason and the task error."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


def test_a_failing_healthcheck_is_a_failure_with_the_task_error(
    cli: Cli, tmp_path: Path, stack_name: str, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 45})
    repo.compose({"web": service(f"{registry}/medianest/app:broken")})
    repo.commit("broken image")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    assert data["_exit_code"] == 1
    (outcome,) = data["results"]
    assert outcome["result"] == "Failed"
    assert outcome["reason"] in ("TasksFailing", "HealthTimeout")
    assert "task" in outcome["message"]
    history = cli.json("history", "--env", "dev")["operations"]
    assert history[0]["result"] == "Failed" and history[0]["reason"] == outcome["reason"]
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert status["health"] in ("Degraded", "Progressing")


def test_swarm_rolling_back_is_reported_as_rolled_back_not_success(
    cli: Cli, tmp_path: Path, stack_name: str, docker_client: docker.DockerClient, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 90})
    rollback_cfg = {"replicas": 1, "update_config": {"failure_action": "rollback", "monitor": "5s"}}
    repo.compose({"web": service(deploy=rollback_cfg)})
    repo.commit("good")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    repo.compose({"web": service(f"{registry}/medianest/app:broken", deploy=rollback_cfg)})
    repo.commit("bad")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    assert data["_exit_code"] == 1
    (outcome,) = data["results"]
    assert outcome["reason"] == "SwarmRolledBack", outcome
    assert "rolled" in outcome["message"] and "unhealthy" in outcome["message"]
    assert "busybox:1" in image_of(docker_client, f"{stack_name}_web")
