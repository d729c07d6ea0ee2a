"""Manual changes on the swarm: reported within 2 s, reverted with self_heal."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable
from typing import Any

import docker
import pytest

from tests.conftest import SwarmUnderTest
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for

pytestmark = pytest.mark.swarm


def replicas(client: docker.DockerClient, name: str) -> int:
    spec = client.api.inspect_service(name)["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


def wait_for_value(producer: Callable[[], Any], timeout: float) -> Any:
    """The first truthy value of ``producer()``; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = producer()
        if value:
            return value
        assert time.monotonic() < deadline, f"nothing within {timeout}s: {producer}"
        time.sleep(0.05)


def change(client: docker.DockerClient, name: str, **spec: Any) -> dt.datetime:
    """A manual change of the service on the swarm, as ``docker service scale/update``
    makes it (the rest of the spec kept): ``mode`` or ``container`` fields. Returns the
    wall-clock time just before it reached the engine, to time the agent's detection
    from (a ``docker`` CLI process would add its own start, a second under load)."""
    service = client.api.inspect_service(name)
    template = {"ContainerSpec": spec.pop("container")} if "container" in spec else None
    before = dt.datetime.now(dt.UTC)
    client.api.update_service(
        service["ID"], service["Version"]["Index"], task_template=template,
        fetch_current_spec=True, **spec,
    )  # fmt: skip
    return before


def detected_after(rig: AgentRig, text: str, changed: dt.datetime) -> float:
    """Seconds from a manual change to the agent's drift record naming ``text`` (its
    start, as the store dated it): the agent's latency, not the test's polling."""
    wait_for(lambda: any(text in o.message for o in rig.operations("drift")), 10)
    op = next(o for o in reversed(rig.operations("drift")) if text in o.message)
    return float((op.started_at - changed).total_seconds())


@pytest.mark.parametrize("self_heal", [True, False])
def test_manual_scale_is_reported_quickly_and_healed_only_with_self_heal(
    self_heal: bool,
    rig: AgentRig,
    docker_client: docker.DockerClient,
) -> None:
    rig.sync["self_heal"] = self_heal
    first = rig.push({"web": service(), "api": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        name = f"{rig.stack}_web"
        changed = change(docker_client, name, mode={"Replicated": {"Replicas": 3}})
        elapsed = detected_after(rig, "replicas", changed)
        assert elapsed < 2.0, f"drift recorded {elapsed:.2f}s after the change"  # SPEC: < 2 s
        drift = rig.operations("drift")[0]
        assert "web" in drift.message and "deploy.replicas: 1 -> 3" in drift.message
        if self_heal:
            wait_for(lambda: replicas(docker_client, name) == 1, 30)
            wait_for(
                lambda: rig.operations("heal") and rig.operations("heal")[0].result == "Succeeded",
                30,
            )
            wait_for(lambda: rig.status().sync == "Synced", 30)
        else:
            wait_for(lambda: rig.status().sync == "OutOfSync", 10)
            status = rig.status()
            assert "web" in status.drift
            assert replicas(docker_client, name) == 3
            assert not rig.operations("heal")


def test_a_removed_service_is_recreated(rig: AgentRig, docker_client: docker.DockerClient) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        docker_client.api.remove_service(f"{rig.stack}_web")
        wait_for(lambda: any("removed" in o.message for o in rig.operations("drift")), 10)
        wait_for(lambda: docker_client.api.services(filters={"name": f"{rig.stack}_web"}), 30)


def test_a_manual_image_or_env_change_is_reported_with_the_fields_that_differ(
    rig: AgentRig, docker_client: docker.DockerClient
) -> None:
    rig.sync["self_heal"] = False
    first = rig.push({"web": service()}, "first")
    name = f"{rig.stack}_web"

    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        changed = change(docker_client, name, container={"Env": ["DEBUG=1"]})
        elapsed = detected_after(rig, "DEBUG=1", changed)
        assert elapsed < 2.0, f"drift recorded {elapsed:.2f}s after the change"
        assert any("environment" in o.message for o in rig.operations("drift"))

        changed = change(docker_client, name, container={"Image": "127.0.0.1:5000/busybox:2"})
        elapsed = detected_after(rig, "busybox:2", changed)
        assert elapsed < 2.0, f"drift recorded {elapsed:.2f}s after the change"
        drift = rig.operations("drift")[0]
        assert "image" in drift.message and "busybox:1" in drift.message, drift.message
        wait_for(lambda: rig.status().sync == "OutOfSync", 10)
        assert "web" in rig.status().drift
        assert not rig.operations("heal")  # self_heal off: reported, not reverted
        spec = docker_client.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert "busybox:2" in spec["Image"] and "DEBUG=1" in spec["Env"]


# --- a manual change while a sync rolls the service out (issue 12) -----------------------


def slow_worker(version: str) -> dict[str, Any]:
    """A worker whose new task takes ~3 s to become healthy: a wide rollout window."""
    return service(
        command=["sh", "-c", "sleep 3; exec httpd -f -p 4000 -h /www"],
        environment={"V": version},
    )


def rollout_in_progress(client: docker.DockerClient, name: str, env: str) -> Callable[[], bool]:
    """gitswarm's deploy of ``env`` went out and Swarm is rolling it out (UpdateStatus)."""

    def check() -> bool:
        raw = client.api.inspect_service(name)
        state = (raw.get("UpdateStatus") or {}).get("State")
        return state == "updating" and env in raw["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]

    return check


CHANGES_DURING_SYNC = {
    "scale": (["scale", "--detach", "{name}=3"], "deploy.replicas: 1 -> 3"),
    "env-add": (["update", "--detach", "--env-add", "DEBUG=1", "{name}"], "DEBUG=1"),
    # the image changed and gitswarm's spec-hash label rewritten with it (still drift)
    "label-rewritten": (
        [
            "update",
            "--detach",
            "--image",
            "127.0.0.1:5000/busybox:2",
            "--label-add",
            "io.gitswarm.spec-hash=anything",
            "{name}",
        ],
        "spec-hash label rewritten outside gitswarm",
    ),
}


@pytest.mark.parametrize(
    ("change", "self_heal"),
    [("scale", True), ("scale", False), ("env-add", True), ("label-rewritten", True)],
)
def test_a_manual_change_during_a_sync_is_drift_once_the_sync_ends(
    change: str,
    self_heal: bool,
    rig: AgentRig,
    swarm: SwarmUnderTest,
    docker_client: docker.DockerClient,
) -> None:
    rig.sync["self_heal"] = self_heal
    name = f"{rig.stack}_worker"
    args, words = CHANGES_DURING_SYNC[change]
    first = rig.push({"worker": slow_worker("1")}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        second = rig.push({"worker": slow_worker("2")}, "the worker changes")
        assert rig.github_push(second) == 202
        wait_for(rollout_in_progress(docker_client, name, "V=2"), 30, interval=0.02)
        subprocess.run(
            ["docker", "-H", swarm.docker_host, "service", *[a.format(name=name) for a in args]],
            check=True, capture_output=True,
        )  # fmt: skip

        def synced() -> Any:
            ops = [o for o in rig.operations("sync") if o.revision == second]
            return ops and ops[0].result not in (None, "Running") and ops[0]

        sync = wait_for_value(synced, 60)
        assert sync.result == "Succeeded", sync.message
        assert "changed on the swarm during the sync" in sync.message and words in sync.message
        wait_for(lambda: any(words in o.message for o in rig.operations("drift")), 10)
        spec = docker_client.api.inspect_service(name)["Spec"]
        if self_heal:
            wait_for(
                lambda: rig.operations("heal") and rig.operations("heal")[0].result == "Succeeded",
                60,
            )
            spec = docker_client.api.inspect_service(name)["Spec"]
            assert spec["Mode"]["Replicated"]["Replicas"] == 1
            assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=2"]
            assert "busybox:1" in spec["TaskTemplate"]["ContainerSpec"]["Image"]
            assert spec["Labels"]["io.gitswarm.spec-hash"] != "anything"
            wait_for(lambda: rig.status().sync == "Synced", 30)
        else:
            status = rig.status()
            assert status.sync == "OutOfSync" and status.revision == second
            assert "worker" in status.drift and words in status.message
            assert spec["Mode"]["Replicated"]["Replicas"] == 3  # reported, left alone
            assert not rig.operations("heal")
