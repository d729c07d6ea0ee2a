"""Outside a deployment window a change is held, and applied when the window opens."""

from __future__ import annotations

import datetime as dt
import time

import docker
import pytest

from gitswarm.reconcile.apply import Clock
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for

pytestmark = pytest.mark.swarm


def test_a_change_outside_the_window_waits_for_it_to_open(
    rig: AgentRig, docker_client: docker.DockerClient
) -> None:
    # The test's clock: a Monday, 4 seconds before the 09:00 UTC window opens, standing
    # still until the change is held (however slow the machine), then running on.
    opens = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    held_at: list[float] = []

    def now() -> dt.datetime:
        ran = time.monotonic() - held_at[0] if held_at else 0.0
        return opens - dt.timedelta(seconds=4) + dt.timedelta(seconds=ran)

    clock = Clock(now=now)
    rig.env_extra = {
        "policies": {
            "deployment_windows": {
                "mode": "enforce", "timezone": "UTC", "allow": ["Mon-Tue 09:00-10:00"],
            }
        }
    }  # fmt: skip
    head = rig.push({"web": service()}, "outside the window")
    with running_rig(rig, clock=clock):
        wait_for(lambda: rig.status() is not None
                 and rig.status().reason == "DeploymentWindowClosed", 30)  # fmt: skip
        held_at.append(time.monotonic())
        assert clock.now() < opens
        assert not docker_client.api.services(filters={"name": f"{rig.stack}_web"})
        assert "09:00" in rig.status().message
        wait_for(rig.deployed(head), 60)
        assert clock.now() >= opens
        deploys = [o for o in rig.operations("sync") if o.result == "Succeeded"]
        assert deploys and deploys[0].started_at  # applied once the window opened
