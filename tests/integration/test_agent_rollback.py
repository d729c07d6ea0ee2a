"""A commit whose image fails health: automatic rollback, not retried, one notification."""

from __future__ import annotations

import docker
import pytest

from gitswarm.model.agent import TriggerRequest
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


def test_a_bad_image_is_rolled_back_and_not_retried(
    rig: AgentRig, docker_client: docker.DockerClient, registry: str
) -> None:
    rig.sync["health_timeout"] = 30
    good = rig.push({"web": service()}, "good")
    with running_rig(rig):
        wait_for(rig.deployed(good), 60)
        bad = rig.push({"web": service(f"{registry}/medianest/app:broken")}, "bad")
        assert rig.github_push(bad) == 202
        wait_for(lambda: rig.status().last_result == "RolledBack", 90)
        status = rig.status()
        assert status.revision == good and status.health == "Healthy"
        assert status.reason in ("TasksFailing", "HealthTimeout", "UpdatePaused")
        assert "busybox:1" in image_of(docker_client, f"{rig.stack}_web")
        assert rig.store is not None and rig.store.is_bad("app", "dev", bad)

        # Triggered again with Git unchanged: the bad revision is not re-applied. (Another
        # delivery: the very same one again would be refused as a replay.)
        assert rig.github_push(bad, pusher="someone-else") == 202
        assert rig.agent is not None
        rig.agent.trigger(TriggerRequest("api", app="app", env="dev"))
        wait_for(lambda: rig.operations("sync")[0].reason == "RevisionMarkedBad", 30)
        failed = [o for o in rig.operations("sync") if o.revision == bad and o.result == "Failed"]
        assert len(failed) == 1
        assert "busybox:1" in image_of(docker_client, f"{rig.stack}_web")
        rollback = rig.operations("rollback")[0]
        assert rollback.result == "Succeeded" and rollback.revision == good

        assert rig.receiver is not None
        received = rig.receiver.wait_for(2, timeout=10)
        titles = [r["title"] for r in received]
        assert sum("sync failed" in t for t in titles) == 1, titles
        assert sum("rollback" in t for t in titles) == 1, titles
        assert all("jwt" not in str(r) for r in received)
