"""`gitswarm sync --override-window --reason`: an explicit, audited way through a closed window."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from gitswarm.store import Store
from tests.gitops import Cli, GitOpsRepo, service
from tests.integration.swarm_helpers import versions

pytestmark = pytest.mark.swarm

FREEZE = {
    "deployment_windows": {
        "mode": "enforce",
        "timezone": "UTC",
        "deny": [{"name": "freeze", "from": "2000-01-01", "until": "2199-12-31"}],
    }
}


def test_a_closed_window_blocks_until_overridden_with_a_reason(
    cli: Cli,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", stack_name)
    repo.write_settings(policies=FREEZE)
    repo.compose({"web": service()})
    repo.commit("during a freeze")
    blocked = cli.json("sync", "--env", "dev", "--repo", str(repo.path))
    assert blocked["_exit_code"] == 2
    assert blocked["results"][0]["reason"] == "DeploymentWindowClosed"
    assert versions(docker_client, stack_name) == {}

    no_reason = cli("sync", "--env", "dev", "--repo", str(repo.path), "--override-window")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output

    result = cli("sync", "--env", "dev", "--repo", str(repo.path), "--override-window",
                 "--reason", "hotfix for INC-42")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{stack_name}_web" in versions(docker_client, stack_name)
    with Store(str(tmp_path / "state.db")) as store:
        (event,) = [e for e in store.audit_events() if e.action == "override-deployment-window"]
    assert event.target == "app/dev" and event.details["reason"] == "hotfix for INC-42"
