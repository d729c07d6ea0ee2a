"""``gitswarm status`` while an agent runs reads what the agent recorded (issues 13, 18):
a manual ``docker service scale`` on the real swarm shows as drift there within
seconds, through the agent's Docker events, with no render and no Docker call of the
command's own; ``--live`` reads the swarm itself and agrees. Its reads go through
swarm/engine.py's standard-library client, which reads what docker-py reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitswarm.model.config import Target
from gitswarm.swarm.client import DockerSwarm
from gitswarm.swarm.engine import EngineReads, socket_path
from tests.conftest import SwarmUnderTest
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for

pytestmark = pytest.mark.swarm


def _status(rig: AgentRig, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``gitswarm status``, as a user runs it beside the agent."""
    exe = str(Path(sys.executable).with_name("gitswarm"))
    argv = [exe, "status", "--repo", rig.remote.url, "--state", str(rig.tmp / "state.db")]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )  # fmt: skip


def _agreed(read: Callable[[Any], Any], reads: EngineReads, docker_py: DockerSwarm) -> Any:
    """What both clients read, once two reads in a row agree. The swarm is still starting
    the scaled tasks, so a task can go from starting to running between the two reads,
    and the engine lists in no fixed order: compare each read sorted by object id."""

    def canonical(value: Any) -> Any:
        if isinstance(value, list):
            return sorted(value, key=lambda item: item.id)
        if hasattr(value, "services"):  # a StackState
            return (canonical(list(value.services)), sorted(value.objects, key=repr))
        return value

    deadline = time.monotonic() + 30
    while True:
        mine, theirs = read(reads), read(docker_py)
        if canonical(mine) == canonical(theirs):
            return mine
        assert time.monotonic() < deadline, f"the clients disagree:\n{mine}\n{theirs}"
        time.sleep(0.2)


def _json(rig: AgentRig, *args: str) -> dict[str, Any]:
    proc = _status(rig, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_a_manual_scale_shows_as_drift_in_status_from_the_store_within_seconds(
    rig: AgentRig, swarm: SwarmUnderTest
) -> None:
    rig.sync["self_heal"] = False
    rig.wc = rig.remote.clone()
    web = service(configs=[{"source": "conf", "target": "/etc/app.conf"}])
    files = rig.files({"web": web, "api": service()}, configs={"conf": {"file": "./app.conf"}})
    first = rig.wc.commit("first", files={**files, "base/app.conf": "x = 1\n"})
    rig.wc.push()
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        data = _json(rig)
        assert data["source"] == "agent" and data["head"] == first
        [row] = data["statuses"]
        assert (row["sync"], row["health"], row["deployed"]) == ("Synced", "Healthy", first)

        subprocess.run(
            ["docker", "-H", swarm.docker_host, "service", "scale", "--detach",
             f"{rig.stack}_web=3"],
            check=True, capture_output=True,
        )  # fmt: skip
        # The agent's part, timed from the change to its record in the store (read in
        # this process: a `gitswarm status` process per look timed its own start too,
        # a second or more each on a loaded machine). The command shows that record.
        elapsed = wait_for(lambda: rig.status().drift, 10)
        assert elapsed < 5.0, f"the agent recorded the drift after {elapsed:.1f}s"
        [row] = _json(rig)["statuses"]
        assert row["sync"] == "OutOfSync"
        [drift] = row["drift"]
        assert drift["service"] == "web"
        assert [(d["field"], d["before"], d["after"]) for d in drift["drift"]] == [
            ("deploy.replicas", 1, 3)
        ]
        text = _status(rig)
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert "drift app/dev web: deploy.replicas: 1 -> 3" in lines
        assert lines[-1].startswith("as recorded by agent ")

        live = _json(rig, "--live")
        assert live["source"] == "live"
        [seen] = live["statuses"]
        assert seen["sync"] == "OutOfSync"
        assert [d["service"] for d in seen["drift"]] == ["web"]

        # What status --live read: the standard library's client sees what docker-py sees.
        target = Target("local")
        path = socket_path(target)
        assert path is not None
        reads, docker_py = EngineReads(target, path), DockerSwarm(target)
        try:
            observed = _agreed(lambda c: c.observe(rig.stack), reads, docker_py)
            assert sorted(o.kind for o in observed.objects) == ["config"]
            ids = [svc.id for svc in observed.services]
            assert len(ids) == 2
            _agreed(lambda c: c.tasks(ids), reads, docker_py)
            _agreed(lambda c: c.services_by_stack()[rig.stack], reads, docker_py)
        finally:
            reads.close()
            docker_py.close()


def test_a_killed_task_shows_in_status_from_the_store_within_a_drift_round(
    rig: AgentRig, swarm: SwarmUnderTest
) -> None:
    """Swarm sends no event on the manager's stream when a task dies: the agent's drift
    round reads the tasks and records the health; ``status`` shows it from the store,
    and shows Healthy again once Swarm's replacement runs."""
    rig.sync["self_heal"] = False
    web = service()
    # Swarm waits this long before it starts the dead task's replacement: the stored and
    # the live verdict below are read well within it, however slow the machine.
    web["deploy"]["restart_policy"] = {"condition": "any", "delay": "20s"}
    first = rig.push({"web": web}, "first")
    period = 1.0
    with running_rig(rig, drift_interval=period):
        wait_for(rig.deployed(first), 60)
        [row] = _json(rig)["statuses"]
        assert (row["health"], row["last_result"]) == ("Healthy", "Succeeded")
        docker = ["docker", "-H", swarm.docker_host]
        label = f"label=com.docker.swarm.service.name={rig.stack}_web"
        ps = subprocess.run(
            [*docker, "ps", "-q", "--filter", label], check=True, capture_output=True, text=True
        )
        [container] = ps.stdout.split()
        subprocess.run([*docker, "kill", container], check=True, capture_output=True)
        # The drift round's record (read in this process, as above), then the command.
        took = wait_for(lambda: rig.status().health != "Healthy", 15)
        print(f"a killed task in the store's status after {took:.1f}s (drift round {period}s)")
        [row] = _json(rig)["statuses"]
        assert row["health"] in ("Progressing", "Degraded"), row
        assert (row["sync"], row["last_result"], row["deployed"]) == (
            "Synced", "Succeeded", first,
        )  # fmt: skip
        live = _json(rig, "--live")
        assert live["source"] == "live" and live["statuses"][0]["health"] == row["health"]
        assert _json(rig)["source"] == "agent"

        # The replacement starts after the restart delay and turns healthy.
        wait_for(lambda: rig.status().health == "Healthy", 60)
        assert _json(rig)["statuses"][0]["health"] == "Healthy"
        [row] = _json(rig)["statuses"]
        assert (row["sync"], row["last_result"]) == ("Synced", "Succeeded")
