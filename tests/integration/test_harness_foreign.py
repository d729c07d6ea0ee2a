"""A Docker engine the harness did not start is left exactly as it was by a lab's life."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import lab as labmod
from harness import system
from harness.engine import PrivateEngine
from harness.images import IMAGES, build

pytestmark = [
    pytest.mark.swarm,
    pytest.mark.skipif(
        bool(os.environ.get("GITSWARM_TEST_DOCKER_HOST")),
        reason="starts private engines of its own",
    ),
]


def snapshot(engine: PrivateEngine) -> dict[str, Any]:
    """IDs, versions and states of everything on the engine, and the engine itself."""
    client = docker.DockerClient(base_url=engine.docker_host, timeout=30)
    try:
        info = client.info()
        return {
            "engine": (info["ID"], info["Swarm"]["NodeID"], info["Swarm"]["LocalNodeState"]),
            "services": {
                s.id: (s.name, s.version, s.attrs["UpdatedAt"]) for s in client.services.list()
            },
            "tasks": {
                t["ID"]: (t["Version"]["Index"], t["Status"]["State"]) for t in client.api.tasks()
            },
            "containers": {
                c.id: (c.status, c.attrs["State"]["StartedAt"], c.attrs["State"]["Pid"])
                for c in client.containers.list(all=True)
            },
            "configs": {c.id: (c.name, c.attrs["Version"]["Index"]) for c in client.configs.list()},
            "secrets": {s.id: (s.name, s.attrs["Version"]["Index"]) for s in client.secrets.list()},
            "networks": sorted(n.id for n in client.networks.list()),
            "images": sorted(i.id for i in client.images.list()),
            "dockerd": engine.process.pid if engine.running and engine.process else None,
            "netns": system.netns_exists(engine.netns),
        }
    finally:
        client.close()


def test_a_full_lab_cycle_leaves_a_foreign_engine_untouched() -> None:
    name = f"f{uuid.uuid4().hex[:7]}"
    foreign = PrivateEngine(name=name, root=Path("/var/tmp/gsh") / name)
    foreign.start()
    try:
        foreign.swarm_init()
        ref = build(foreign.docker_host, IMAGES[0])
        foreign.docker("config", "create", "foreign-cfg", "/etc/hostname")
        foreign.docker("network", "create", "--driver", "overlay", "foreign-net")
        foreign.docker(
            "service", "create", "--detach", "--init", "--name", "foreign-web",
            "--config", "foreign-cfg", "--network", "foreign-net", ref,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "1/1" not in foreign.docker("service", "ls", "--format", "{{.Replicas}}"):
            assert time.monotonic() < deadline, "the foreign service did not start"
            time.sleep(0.1)
        before = snapshot(foreign)

        lab = labmod.up(f"l{uuid.uuid4().hex[:7]}")  # reap, engine, swarm, registry, images
        lab.down()
        system.reap_stale()

        assert snapshot(foreign) == before
    finally:
        foreign.stop()
