"""The agent deploys pushed commits: via a signed webhook, or by polling; bad
signatures trigger nothing; a burst of webhooks coalesces."""

from __future__ import annotations

import concurrent.futures
import time

import docker
import pytest

from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.swarm_helpers import image_of

pytestmark = pytest.mark.swarm


def test_a_signed_webhook_deploys_the_pushed_commit(
    rig: AgentRig, docker_client: docker.DockerClient, registry: str
) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        second = rig.push({"web": service(f"{registry}/busybox:2")}, "second")
        assert rig.github_push(second) == 202
        wait_for(rig.deployed(second), 60)
        assert "busybox:2" in image_of(docker_client, f"{rig.stack}_web")


def test_polling_alone_deploys_the_pushed_commit(
    rig: AgentRig, docker_client: docker.DockerClient, registry: str
) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig, poll_interval=1.0, poll_jitter=0.0):
        wait_for(rig.deployed(first), 60)
        second = rig.push({"web": service(f"{registry}/busybox:2")}, "second")
        wait_for(rig.deployed(second), 60)
        assert "busybox:2" in image_of(docker_client, f"{rig.stack}_web")
        polls = rig.agent.metrics.git_polls.labels("no")._value.get()  # type: ignore[union-attr]
        assert polls >= 1  # quiet polls fetched nothing


def test_an_unsigned_or_badly_signed_webhook_gets_401_and_deploys_nothing(
    rig: AgentRig, registry: str
) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        second = rig.push({"web": service(f"{registry}/busybox:2")}, "second")
        assert rig.github_push(second, sign=False) == 401
        assert rig.github_push(second, secret="wrong") == 401
        time.sleep(2)
        assert rig.status().revision == first
        assert not [o for o in rig.operations("sync") if o.revision == second]


def test_a_burst_of_webhooks_causes_at_most_two_syncs_and_the_last_commit_wins(
    rig: AgentRig, registry: str
) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        before = len(rig.operations("sync"))
        last = rig.push({"web": service(f"{registry}/busybox:2")}, "burst")
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            # 100 distinct deliveries (a repeat of one would be refused as a replay)
            codes = list(pool.map(lambda n: rig.github_push(last, pusher=f"dev{n}"), range(100)))
        assert codes == [202] * 100
        wait_for(rig.deployed(last), 60)
        time.sleep(1.0)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        syncs = rig.operations("sync")[: len(rig.operations("sync")) - before]
        assert 1 <= len(syncs) <= 2, [(o.revision, o.message) for o in syncs]
        assert syncs[0].revision == last
