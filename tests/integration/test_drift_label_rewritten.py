"""On the real swarm: a manual change that also rewrites (or removes) gitswarm's
spec-hash label is drift — reported with its fields, healed with self_heal, shown by
``gitswarm diff``; what Swarm itself rolled back is never healed into a redeploy of
the revision it rolled back. The unit tests of the same are
tests/unit/test_drift_label_rewritten.py; the race (the change made while a sync rolls
the service out) is in test_agent_drift.py."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import docker
import pytest

from gitswarm.model.stack import LABEL_SPEC_HASH
from tests.conftest import SwarmUnderTest
from tests.gitops import Cli, service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm

# Rounds this short make "over several drift rounds" a few seconds.
DRIFT_INTERVAL = 1.5


def docker_cli(swarm: SwarmUnderTest, *args: str) -> None:
    """The Docker CLI, as someone with Docker access (and no push access) runs it."""
    subprocess.run(["docker", "-H", swarm.docker_host, *args], check=True, capture_output=True)


def spec_of(client: docker.DockerClient, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = client.api.inspect_service(name)["Spec"]
    return spec


def update_state(client: docker.DockerClient, name: str) -> str | None:
    state: str | None = (client.api.inspect_service(name).get("UpdateStatus") or {}).get("State")
    return state


def test_a_rewritten_label_is_drift_reported_and_healed(
    rig: AgentRig, swarm: SwarmUnderTest, docker_client: docker.DockerClient, registry: str
) -> None:
    name = f"{rig.stack}_web"
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        deployed = spec_of(docker_client, name)["Labels"][LABEL_SPEC_HASH]
        docker_cli(
            swarm, "service", "update", "--detach", "--image", f"{registry}/busybox:2",
            "--label-add", f"{LABEL_SPEC_HASH}=anything", name,
        )  # fmt: skip
        wait_for(lambda: any("label rewritten" in o.message for o in rig.operations("drift")), 10)
        drift = rig.operations("drift")[0]
        assert drift.reason == "Drift"
        assert "busybox:2" in drift.message and f"deploy.labels.{LABEL_SPEC_HASH}" in drift.message
        wait_for(
            lambda: rig.operations("heal") and rig.operations("heal")[0].result == "Succeeded", 60
        )
        spec = spec_of(docker_client, name)
        assert spec["Labels"][LABEL_SPEC_HASH] == deployed
        assert "busybox:1" in image_of(docker_client, name)
        wait_for(lambda: rig.status().sync == "Synced", 30)
        assert rig.receiver is not None
        titles = [r["title"] for r in rig.receiver.wait_for(1, timeout=10)]
        assert any("drift" in t.lower() for t in titles), titles


def test_a_removed_label_without_self_heal_is_reported_and_shown_by_diff(
    rig: AgentRig, cli: Cli, swarm: SwarmUnderTest, docker_client: docker.DockerClient,
    registry: str,
) -> None:  # fmt: skip
    rig.sync["self_heal"] = False
    name = f"{rig.stack}_web"
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        docker_cli(
            swarm, "service", "update", "--detach", "--image", f"{registry}/busybox:2",
            "--label-rm", LABEL_SPEC_HASH, name,
        )  # fmt: skip
        wait_for(lambda: rig.status().sync == "OutOfSync", 10)
        status = rig.status()
        assert "spec-hash label removed outside gitswarm" in status.message
        fields = {d["field"] for d in status.drift["web"]["drift"]}
        assert {"image", f"deploy.labels.{LABEL_SPEC_HASH}"} <= fields
        assert not rig.operations("heal") and "busybox:2" in image_of(docker_client, name)
        # the API's diff (the dashboard's drift details) from a fresh plan
        wait_for(rig.agent.idle, 30)
        [web] = [c for c in rig.agent.diff("app", "dev")["services"] if c["service"] == "web"]
        assert web["note"] == "gitswarm's spec-hash label removed outside gitswarm"
        assert {"image", f"deploy.labels.{LABEL_SPEC_HASH}"} <= {d["field"] for d in web["drift"]}

        out = cli("diff", "--env", "dev", "--repo", rig.remote.url).stdout
        assert "= web: unchanged  (gitswarm's spec-hash label removed outside gitswarm)" in out
        assert f"drift deploy.labels.{LABEL_SPEC_HASH}: " in out, out
        assert "drift image: " in out and "busybox:2" in out, out


ROLLS_BACK = {"replicas": 1, "update_config": {"failure_action": "rollback", "monitor": "5s"}}


def test_swarms_rollback_of_a_failed_deploy_is_not_healed_into_a_redeploy(
    rig: AgentRig, docker_client: docker.DockerClient, registry: str
) -> None:
    rig.sync["health_timeout"] = 60  # self_heal and auto_rollback: on (the rig's default)
    name = f"{rig.stack}_web"
    good = rig.push({"web": service(deploy=ROLLS_BACK)}, "good")
    with running_rig(rig, drift_interval=DRIFT_INTERVAL):
        wait_for(rig.deployed(good), 60)
        bad = rig.push(
            {"web": service(f"{registry}/medianest/app:broken", deploy=ROLLS_BACK)}, "bad"
        )
        assert rig.github_push(bad) == 202
        wait_for(lambda: rig.status().last_result == "RolledBack", 120)
        status = rig.status()
        assert status.reason == "SwarmRolledBack", status.message
        assert status.revision == good
        assert rig.store is not None and rig.store.is_bad("app", "dev", bad)
        wait_for(lambda: update_state(docker_client, name) == "rollback_completed", 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        version = docker_client.api.inspect_service(name)["Version"]["Index"]
        ops = len(rig.operations())
        time.sleep(5 * DRIFT_INTERVAL)  # several drift rounds
        assert docker_client.api.inspect_service(name)["Version"]["Index"] == version
        assert [o.kind for o in rig.operations()[: len(rig.operations()) - ops]] == []
        assert not rig.operations("heal")
        assert not [o for o in rig.operations("drift") if o.reason == "Drift"]
        assert [o.revision for o in rig.operations("sync") if o.revision == bad] == [bad]
        assert "busybox:1" in image_of(docker_client, name)
        assert rig.status().last_result == "RolledBack"


def test_swarm_rolling_back_a_healthy_deploy_is_reported_and_not_redeployed(
    rig: AgentRig, swarm: SwarmUnderTest, docker_client: docker.DockerClient
) -> None:
    name = f"{rig.stack}_web"
    first = rig.push({"web": service(environment={"V": "1"})}, "first")
    with running_rig(rig, drift_interval=DRIFT_INTERVAL):
        wait_for(rig.deployed(first), 60)
        second = rig.push({"web": service(environment={"V": "2"})}, "second")
        assert rig.github_push(second) == 202
        wait_for(rig.deployed(second), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        docker_cli(swarm, "service", "rollback", "--detach", name)
        wait_for(lambda: "rolled back by Swarm" in rig.status().message, 15)
        wait_for(lambda: update_state(docker_client, name) == "rollback_completed", 60)
        wait_for(rig.agent.idle, 30)
        version = docker_client.api.inspect_service(name)["Version"]["Index"]
        time.sleep(5 * DRIFT_INTERVAL)  # several drift rounds: reported, never redeployed
        assert docker_client.api.inspect_service(name)["Version"]["Index"] == version
        assert not rig.operations("heal")
        status = rig.status()
        assert status.sync == "OutOfSync" and list(status.drift) == ["web"]
        env = spec_of(docker_client, name)["TaskTemplate"]["ContainerSpec"]["Env"]
        assert env == ["V=1"]
        assert rig.receiver is not None
        titles = [r["title"] for r in rig.receiver.wait_for(1, timeout=10)]
        assert sum("drift" in t.lower() for t in titles) == 1, titles
