"""Bad commits reach the agent: nothing changes on the swarm, status and history say why."""

from __future__ import annotations

import docker
import pyrage
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

        # A schema violation: replicas is not a number.
        schema = rig.push({"web": service(deploy={"replicas": "three"})}, "replicas: three")
        assert rig.github_push(schema) == 202
        wait_for(lambda: rig.status().reason == "ValidationFailed", 30)
        assert "replicas" in rig.status().message

        # A config file outside the repository.
        outside = rig.push(
            {"web": service(configs=[{"source": "conf", "target": "/etc/conf"}])},
            "config from outside",
            configs={"conf": {"file": "../../../etc/passwd"}},
        )
        assert rig.github_push(outside) == 202
        wait_for(lambda: rig.status().reason == "PathOutsideRepo", 30)

        # A secret encrypted to a key the agent does not hold.
        files = rig.files(
            {"web": service(secrets=["token"])}, secrets={"token": {"file": "./token.age"}}
        )
        other_key = pyrage.x25519.Identity.generate().to_public()
        files["base/token.age"] = pyrage.encrypt(b"s3cret-value", [other_key])  # type: ignore[assignment]
        no_key = rig.wc.commit("secret for someone else", files=files)
        rig.wc.push()
        assert rig.github_push(no_key) == 202
        wait_for(lambda: rig.status().reason == "SecretDecryptFailed", 30)
        assert "token" in rig.status().message

        wait_for(rig.agent.idle, 30)
        assert versions(docker_client, rig.stack) == before  # the swarm never moved
        status = rig.status()
        assert status.revision == good and status.health == "Healthy"
        failed = {o.reason for o in rig.operations() if o.result == "Failed"}
        assert {
            "ConfigInvalid", "VariableUnset", "YamlInvalid", "ValidationFailed",
            "PathOutsideRepo", "SecretDecryptFailed",
        } <= failed  # fmt: skip
        assert not [
            s for s in docker_client.api.secrets() if s["Spec"]["Name"].startswith(rig.stack)
        ]

        fixed = rig.push({"web": service(f"{registry}/busybox:2")}, "fixed")
        assert rig.github_push(fixed) == 202
        wait_for(rig.deployed(fixed), 60)
