"""`gitswarm rollback --previous` after a bad commit: a Git commit, a deploy, a record."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


def test_rollback_previous_restores_the_last_healthy_images(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 20})
    repo.write("environments/dev/.env", "TAG=1\n")
    repo.compose({"web": service(f"{registry}/busybox:${{TAG}}"), "api": service()})
    good = repo.commit("good")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    repo.compose({"web": service(f"{registry}/medianest/app:broken"), "api": service()})
    bad = repo.commit("bad")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 1

    result = cli(
        "rollback",
        "--env",
        "dev",
        "--previous",
        "--repo",
        str(repo.path),
        "--reason",
        "broken health",
    )
    assert result.exit_code == 0, result.output
    assert "busybox:1" in image_of(docker_client, f"{stack_name}_web")
    head = repo.git("rev-parse", "HEAD")
    assert head not in (good, bad)
    message = repo.git("log", "-1", "--format=%B")
    assert f"to {good[:12]}" in message and "broken health" in message
    assert "base/docker-compose.yml" in message
    assert repo.git("show", f"{head}:base/docker-compose.yml") == repo.git(
        "show", f"{good}:base/docker-compose.yml"
    )
    ops = cli.json("history", "--env", "dev")["operations"]
    kinds = [(o["kind"], o["result"], o["revision"]) for o in ops]
    assert kinds[0] == ("rollback", "Succeeded", head)
    assert ("sync", "Failed", bad) in kinds and ("sync", "Succeeded", good) in kinds
    status = cli.json("status", "--env", "dev", "--repo", str(repo.path))["statuses"][0]
    assert (status["sync"], status["health"], status["deployed"]) == ("Synced", "Healthy", head)


def test_rollback_without_push_deploys_the_old_revision_and_marks_head_bad(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name, sync={"prune": True, "health_timeout": 60})
    repo.compose({"web": service()})
    good = repo.commit("good")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    repo.compose({"web": service(f"{registry}/busybox:2")})
    newer = repo.commit("newer")
    assert cli("sync", "--env", "dev", "--repo", str(repo.path)).exit_code == 0
    result = cli("rollback", "--env", "dev", "--to", good, "--no-push", "--repo", str(repo.path))
    assert result.exit_code == 0, result.output
    assert "busybox:1" in image_of(docker_client, f"{stack_name}_web")
    assert repo.git("rev-parse", "HEAD") == newer  # Git untouched
    skipped = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    assert skipped["results"][0]["reason"] == "RevisionMarkedBad"
    assert "busybox:1" in image_of(docker_client, f"{stack_name}_web")
    op = cli.json("history", "--env", "dev")["operations"][1]
    assert op["kind"] == "rollback" and "without a Git commit" in op["message"]
