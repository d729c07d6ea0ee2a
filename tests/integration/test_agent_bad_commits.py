"""Bad commits reach the agent: nothing changes on the swarm, status and history say why."""

from __future__ import annotations

import docker
import pytest

from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import versions

pytestmark = pytest.mark.swarm


def test_bad_commits_change_nothing_and_are_reported(
    rig: AgentRig, docker_client: docker.DockerClient, registry: str
) -> None:
    good = rig.push({"web": service()}, "good")
    with running_rig(rig):
        wait_for(rig.deployed(good), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        before = versions(docker_client, rig.stack)

        # An unknown key in gitswarm.yml.
        assert rig.wc is not None
        files = rig.files({"web": service(f"{registry}/busybox:2")})
        files["gitswarm.yml"] += "surprise: true\n"
        bad_config = rig.wc.commit("bad settings", files=files)
        rig.wc.push()
        assert rig.github_push(bad_config) == 202
        wait_for(lambda: rig.status().reason == "ConfigInvalid", 30)
        assert "gitswarm.yml" in rig.status().message and "surprise" in rig.status().message

        # A variable that is not set anywhere.
        unset = rig.push({"web": service(f"{registry}/busybox:${{NO_SUCH_TAG}}")}, "unset var")
        assert rig.github_push(unset) == 202
        wait_for(lambda: rig.status().reason == "VariableUnset", 30)
        assert "NO_SUCH_TAG" in rig.status().message

        # YAML that does not parse.
        assert rig.wc is not None
        broken = rig.wc.commit("broken yaml", files={"base/docker-compose.yml": "services: [\n"})
        rig.wc.push()
        assert rig.github_push(broken) == 202
        wait_for(lambda: rig.status().reason == "YamlInvalid", 30)

        wait_for(rig.agent.idle, 30)
        assert versions(docker_client, rig.stack) == before  # the swarm never moved
        status = rig.status()
        assert status.revision == good and status.health == "Healthy"
        failed = {o.reason for o in rig.operations() if o.result == "Failed"}
        assert {"ConfigInvalid", "VariableUnset", "YamlInvalid"} <= failed

        fixed = rig.push({"web": service(f"{registry}/busybox:2")}, "fixed")
        assert rig.github_push(fixed) == 202
        wait_for(rig.deployed(fixed), 60)
