"""The plan property of tests/unit/test_plan_properties.py on the real swarm: generated
stacks (environment and labels with ``$``, ports, update_config, configs, secrets,
networks, overlays) are applied with the real ``docker stack deploy`` as the sync applies
them, and then planning the same render — or a new commit's render of the same content —
finds nothing to do and writes nothing; what Swarm runs is what was rendered.

Services get the registry's image and ``replicas: 0`` (no task to start: the property is
about specs), each example its own stack, removed after the test.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitswarm.model.config import Target
from gitswarm.model.operation import Baseline
from gitswarm.plan import make_plan
from gitswarm.swarm.client import DockerSwarm
from harness.images import REGISTRY
from tests.conftest import Cleaner, SwarmUnderTest
from tests.properties import examples
from tests.unit.generated_stacks import GeneratedRepo, Text, repos
from tests.unit.test_plan_properties import (
    assert_nothing_to_do,
    assert_runs_as_rendered,
    render,
    sync,
)

pytestmark = pytest.mark.swarm


def _deployable_here(data: dict[str, Any], image: str, base: bool) -> dict[str, Any]:
    services = {}
    for name, service in data.get("services", {}).items():
        service = dict(service)
        if "image" in service:
            service["image"] = Text(image, image)
        if base:
            deploy = {k: v for k, v in (service.get("deploy") or {}).items() if k != "mode"}
            service["deploy"] = {**deploy, "replicas": 0}
        services[name] = service
    return {**data, "services": services}


@settings(max_examples=examples(8))
@given(data=st.data())
def test_after_a_real_sync_the_plan_of_the_same_render_is_empty(
    data: st.DataObject, swarm: SwarmUnderTest, cleaner: Cleaner
) -> None:
    if not swarm.registry:
        pytest.skip("needs the private registry")
    stack = f"tprop{uuid.uuid4().hex[:8]}"
    generated = data.draw(repos(stack_template=st.just(stack)))
    repo: GeneratedRepo = replace(
        generated,
        compose=tuple(
            (name, _deployable_here(d, f"{REGISTRY}/busybox:1", base=i == 0))
            for i, (name, d) in enumerate(generated.compose)
        ),
    )
    desired = render(repo)
    docker = DockerSwarm(Target("test", url=swarm.docker_host))
    try:
        baselines: dict[str, Baseline] = {}
        first = sync(docker, desired, baselines)
        assert set(first.to_deploy) == set(desired.services)
        observed = docker.observe(desired.stack)
        assert_runs_as_rendered(observed, desired)
        assert_nothing_to_do(make_plan(desired, observed, baselines, prune=True, heal=True))
        writes = docker.writes
        assert_nothing_to_do(sync(docker, render(repo, revision="b" * 40), baselines))
        assert docker.writes == writes
    finally:
        docker.close()
        cleaner.submit(stack)  # in the background; the session waits for it
