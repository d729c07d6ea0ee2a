"""How gitswarm lists one stack's services on the real engine (issue 18): by the stack's
label and its name prefix (swarm/port.py ``stack_filters``), so the engine looks the
prefix up in its index instead of scanning every service of the swarm (5,000 at 1,000
apps, several listings per sync). The label still decides: a stack whose name starts
with another's (``s`` and ``s_b``) is not listed with it. The drift round's listing of
every stack comes without ``PreviousSpec``, each ``Spec`` kept as JSON until read, and
is otherwise the same record (swarm/listing.py). Unit side: tests/unit/test_sync_reads.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from gitswarm.model.config import Target
from gitswarm.model.observed import LazySpec
from gitswarm.model.stack import LABEL_STACK
from gitswarm.swarm.client import DockerSwarm
from gitswarm.swarm.engine import EngineReads, socket_path
from harness.images import REGISTRY
from tests.conftest import SwarmUnderTest

pytestmark = pytest.mark.swarm


@pytest.fixture()
def stacks(docker_client: docker.DockerClient) -> Iterator[str]:
    """Services of stacks ``s`` and ``s_b`` (replicas 0), made as `docker stack deploy`
    names them, and one of ``s_b`` updated once (it has a PreviousSpec)."""
    stack = f"tlist{uuid.uuid4().hex[:8]}"
    made = []
    try:
        for namespace, name in ((stack, "web"), (stack, "api"), (f"{stack}_b", "web")):
            made.append(
                docker_client.services.create(
                    f"{REGISTRY}/busybox:1",
                    ["sleep", "3600"],
                    name=f"{namespace}_{name}",
                    labels={LABEL_STACK: namespace},
                    mode=docker.types.ServiceMode("replicated", replicas=0),
                )
            )
        made[0].update(labels={LABEL_STACK: stack, "updated": "once"})
        yield stack
    finally:
        for service in made:
            service.remove()


def test_a_stack_is_listed_by_label_and_name_prefix_without_its_namesakes(
    swarm: SwarmUnderTest, stacks: str
) -> None:
    target = Target("test", url=swarm.docker_host)
    path = socket_path(target)
    assert path is not None
    engine, reads = DockerSwarm(target), EngineReads(target, path)
    try:
        for client in (engine, reads):
            assert sorted(s.name for s in client.services(stacks)) == [
                f"{stacks}_api",
                f"{stacks}_web",
            ]
            assert [s.name for s in client.services(f"{stacks}_b")] == [f"{stacks}_b_web"]
            web = next(s for s in client.services(stacks) if s.compose_name == "web")
            assert web.previous_spec is not None  # a stack's own listing keeps it
            listed = client.services_by_stack()
            assert sorted(s.name for s in listed[stacks]) == [f"{stacks}_api", f"{stacks}_web"]
            assert [s.name for s in listed[f"{stacks}_b"]] == [f"{stacks}_b_web"]
            assert all(s.previous_spec is None for v in listed.values() for s in v)
            # The round's listing (swarm/listing.py: typed, Spec kept as JSON until read)
            # is the stack's own listing field for field, on this engine's real answers.
            for namespace in (stacks, f"{stacks}_b"):
                full = {s.id: s for s in client.services(namespace)}
                for svc in listed[namespace]:
                    assert isinstance(svc.spec, LazySpec) and not svc.spec.decoded
                    want = full[svc.id]
                    assert (svc.name, dict(svc.labels), svc.version, svc.mode, svc.replicas) == (
                        want.name, dict(want.labels), want.version, want.mode, want.replicas
                    )  # fmt: skip
                    assert (svc.update_status, svc.updated_at) == (
                        want.update_status,
                        want.updated_at,
                    )
                    assert dict(svc.spec) == dict(want.spec)
                    assert svc.template_digest == want.template_digest
    finally:
        engine.close()
        reads.close()
