"""The agent survives what production throws at it: the Git remote going away, its own
kill -9 mid-sync, a standby waiting for the leader to die, the Docker daemon restarting
in the middle of a sync."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from gitswarm.store import Store
from harness import lab as labmod
from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest, remove_stack_objects
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.faults import AgentProcess, kill_leader, takeover_seconds
from tests.integration.swarm_helpers import image_of, object_names

pytestmark = pytest.mark.swarm


def seed(remote: GitRemote, rig: AgentRig, services: dict[str, Any], message: str) -> str:
    return rig.push(services, message)


def test_git_remote_down_keeps_the_agent_running_and_it_recovers(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    rig = AgentRig(git_remote, tmp_path, stack_name)
    first = rig.push({"web": service()}, "first")
    with running_rig(rig, poll_interval=0.5, poll_jitter=0.0, git_backoff_max=2.0):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        git_remote.stop()
        wait_for(lambda: not rig.agent.readiness().checks["git"]["ok"], 20)  # type: ignore[union-attr]
        readiness = rig.agent.readiness()
        assert not readiness.ready and "unreachable" not in readiness.checks["store"]["detail"]
        assert rig.agent.metrics.git_fetch_errors._value.get() >= 1
        assert rig.status().revision == first  # nothing deleted, nothing changed
        (shown,) = [s for s in rig.agent.statuses() if s["app"] == "app"]
        assert shown["source"]["ok"] is False and shown["source"]["error"]
        assert docker_client.api.services(filters={"name": f"{stack_name}_web"})
        git_remote.start()
        second = rig.push({"web": service(f"{registry}/busybox:2")}, "second")
        wait_for(rig.deployed(second), 60)
        wait_for(lambda: rig.agent.readiness().ready, 20)  # type: ignore[union-attr]
        assert "busybox:2" in image_of(docker_client, f"{stack_name}_web")


def _agent_settings(remote: GitRemote, tmp: Path, **extra: Any) -> dict[str, Any]:
    return {
        "repo": remote.url,
        "state": str(tmp / "state.db"),
        "poll_interval": 1,
        "lease_ttl": 2,
        "drift_interval": 300,
        **extra,
    }


def test_a_standby_agent_takes_over_within_two_lease_periods(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    agents: list[AgentProcess],
    registry: str,
) -> None:
    rig = AgentRig(git_remote, tmp_path, stack_name)
    rig.push({"web": service()}, "first")
    settings = _agent_settings(git_remote, tmp_path)
    first = AgentProcess(tmp_path, "a", settings, swarm.docker_host)
    agents.append(first)
    wait_for(first.leader, 30)
    second = AgentProcess(tmp_path, "b", settings, swarm.docker_host)
    agents.append(second)
    wait_for(lambda: second.ready() is not None, 30)
    time.sleep(2)
    assert not second.leader()  # a standby while the leader lives
    with Store(str(tmp_path / "state.db")) as store:
        dead, killed = kill_leader(first, store)
        wait_for(second.leader, 30)
        took = takeover_seconds(store, dead, killed)
    assert took <= 2 * 2.0, f"takeover {took:.2f}s after the kill"  # two lease periods


def test_kill_9_mid_sync_then_a_restarted_agent_converges(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    agents: list[AgentProcess],
    docker_client: docker.DockerClient,
    registry: str,
) -> None:
    rig = AgentRig(git_remote, tmp_path, stack_name)
    slow = service(healthcheck={
        "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
        "interval": "4s", "start_period": "0s", "retries": 3,
    })  # fmt: skip
    head = rig.push({"web": slow}, "slow to become healthy")
    settings = _agent_settings(git_remote, tmp_path)
    first = AgentProcess(tmp_path, "a", settings, swarm.docker_host)
    agents.append(first)
    store = Store(str(tmp_path / "state.db"))
    try:

        def running() -> bool:
            return any(o.result == "Running" for o in store.history(app="app", env="dev"))

        wait_for(running, 60)
        first.kill_9()
        second = AgentProcess(tmp_path, "b", settings, swarm.docker_host)
        agents.append(second)

        def converged() -> bool:
            status = store.get_status("app", "dev")
            return bool(status and status.revision == head and status.health == "Healthy")

        wait_for(converged, 120)
        results = [o.result for o in store.history(app="app", env="dev")]
        assert "Interrupted" in results and "Running" not in results
        interrupted = next(
            o for o in store.history(app="app", env="dev") if o.result == "Interrupted"
        )
        assert interrupted.revision == head
    finally:
        store.close()


# When dockerd dies, urllib3 drops docker-py's broken unix-socket connections without
# closing them; the garbage collector then warns about the sockets (third-party).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_docker_restart_during_a_sync_recovers_without_duplicate_objects(
    git_remote: GitRemote,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = labmod.up(f"r{os.getpid()}")
    try:
        monkeypatch.setenv("DOCKER_HOST", lab.docker_host)
        monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
        client = docker.DockerClient(base_url=lab.docker_host)
        rig = AgentRig(git_remote, tmp_path, "restart")
        slow = service(healthcheck={
            "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
            "interval": "3s", "retries": 3,
        }, configs=[{"source": "conf", "target": "/etc/conf"}])  # fmt: skip
        wc_files = {"base/app.conf": "v1\n"}
        rig.wc = git_remote.clone()
        rig.wc.write_files(wc_files)
        head = rig.push({"web": slow}, "with a config", configs={"conf": {"file": "./app.conf"}})
        with running_rig(rig, poll_interval=1.0, poll_jitter=0.0):
            assert rig.store is not None
            wait_for(lambda: any(o.result == "Running" for o in rig.operations("sync")), 60)
            lab.engine.kill()  # dockerd dies mid-sync ...
            time.sleep(1)
            lab.engine.start()  # ... and comes back
            wait_for(rig.deployed(head), 120)
            assert object_names(client, "restart", "config") == {
                n
                for n in object_names(client, "restart", "config")
                if n.startswith("restart_conf_")
            }
            assert len(object_names(client, "restart", "config")) == 1
            assert "busybox:1" in image_of(client, "restart_web")
        remove_stack_objects(client, "restart")
        client.close()
    finally:
        lab.down()
        # Collect those sockets now, while the warnings are ignored: left to a later
        # collection they fail whichever test happens to be running then.
        gc.collect()
