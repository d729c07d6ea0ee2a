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
        started = time.monotonic()
        while True:
            [row] = _json(rig)["statuses"]
            if row["drift"]:
                break
            assert time.monotonic() - started < 10, f"no drift in status: {row}"
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        assert elapsed < 5.0, f"status showed the drift after {elapsed:.1f}s"
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
            observed = reads.observe(rig.stack)
            assert observed == docker_py.observe(rig.stack)
            assert sorted(o.kind for o in observed.objects) == ["config"]
            ids = [svc.id for svc in observed.services]
            assert len(ids) == 2 and reads.tasks(ids) == docker_py.tasks(ids)
            assert reads.services_by_stack()[rig.stack] == docker_py.services_by_stack()[rig.stack]
        finally:
            reads.close()
            docker_py.close()
