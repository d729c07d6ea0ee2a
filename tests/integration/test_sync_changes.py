"""A commit changes only what it changes: one service's image, nothing for a comment."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import image_of, running_tasks, versions

pytestmark = pytest.mark.swarm


def test_one_image_change_replaces_only_that_services_tasks(
    cli: Cli, tmp_path: Path, stack_name: str, docker_client: docker.DockerClient, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name)
    repo.compose({"web": service(), "api": service()})
    first = repo.commit("two services")
    result = cli("sync", "--env", "dev", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert (status["sync"], status["health"], status["head"]) == ("Synced", "Healthy", first)
    api_tasks = running_tasks(docker_client, f"{stack_name}_api")
    web_tasks = running_tasks(docker_client, f"{stack_name}_web")
    before = versions(docker_client, stack_name)

    repo.compose({"web": service(f"{registry}/busybox:2"), "api": service()})
    repo.commit("web to busybox:2")
    result = cli("sync", "--env", "dev", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "busybox:2" in image_of(docker_client, f"{stack_name}_web")
    assert running_tasks(docker_client, f"{stack_name}_api") == api_tasks
    assert running_tasks(docker_client, f"{stack_name}_web").isdisjoint(web_tasks)
    after = versions(docker_client, stack_name)
    assert after[f"{stack_name}_api"] == before[f"{stack_name}_api"]  # not even touched
    assert "image" in result.output


def test_a_comment_only_commit_makes_no_docker_write(
    cli: Cli, tmp_path: Path, stack_name: str, docker_client: docker.DockerClient, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name)
    repo.compose({"web": service()})
    repo.commit("one service")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    before = versions(docker_client, stack_name)
    tasks = running_tasks(docker_client, f"{stack_name}_web")

    compose = (repo.path / "base/docker-compose.yml").read_text()
    repo.write("base/docker-compose.yml", "# a comment changes nothing\n" + compose)
    second = repo.commit("comment only")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    assert data["_exit_code"] == 0
    (outcome,) = data["results"]
    assert outcome["revision"] == second
    assert outcome["plan"]["in_sync"] is True
    assert versions(docker_client, stack_name) == before
    assert running_tasks(docker_client, f"{stack_name}_web") == tasks
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert (status["sync"], status["health"]) == ("Synced", "Healthy")


def test_dry_run_changes_nothing(
    cli: Cli, tmp_path: Path, stack_name: str, docker_client: docker.DockerClient, registry: str
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name)
    repo.compose({"web": service()})
    repo.commit("one service")
    data = cli.json("sync", "--env", "dev", "--repo", str(repo.path), "--dry-run")
    assert data["_exit_code"] == 0
    assert data["results"][0]["plan"]["services"][0]["action"] == "create"
    assert versions(docker_client, stack_name) == {}
