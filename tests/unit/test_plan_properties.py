"""Properties of plan/ over generated stacks (Hypothesis; profiles in tests/properties.py):
once the rendered stack is applied as the sync applies it (reconcile/apply.py, on the
in-memory FakeSwarm) and the baselines are recorded as the sync records them, planning
the same render again finds nothing to do — no deploy, no new object, no orphan, no
drift — and so does the render of a new commit with the same content. What runs is what
was rendered: image, environment (``$`` exactly once), labels, replicas, configs and
secrets. tests/integration/test_plan_properties_swarm.py checks the same on the real
swarm."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings

from gitswarm.errors import SwarmError
from gitswarm.model.observed import StackState
from gitswarm.model.operation import Baseline
from gitswarm.model.stack import DesiredStack
from gitswarm.plan import Plan, deployable_compose, make_plan
from gitswarm.reconcile.apply import apply_plan, read_applied
from gitswarm.render import render_stack, to_yaml
from gitswarm.repo import load_config
from gitswarm.swarm.client import Swarm
from gitswarm.swarm.fake import FakeSwarm
from tests.properties import examples
from tests.unit.generated_stacks import IDENTITY, GeneratedRepo, repos

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def render(repo: GeneratedRepo, revision: str = "a" * 40) -> DesiredStack:
    tree = repo.tree(revision=revision)
    return render_stack(tree, load_config(tree), repo.app, repo.env, IDENTITY)


def sync(swarm: Swarm, desired: DesiredStack, baselines: dict[str, Baseline]) -> Plan:
    """What reconcile/sync.py does for one stack: plan, apply, read what was applied and
    record it as the baselines."""
    plan = make_plan(desired, swarm.observe(desired.stack), baselines, prune=True, heal=True)
    compose = to_yaml(replace(desired, compose=deployable_compose(desired, plan.to_deploy)))
    apply_plan(swarm, plan, compose if plan.to_deploy else None, resolve_image="never")
    applied = read_applied(swarm, desired, plan.to_deploy) if plan.to_deploy else {}
    for live in swarm.services(desired.stack):
        name = live.compose_name
        if name not in applied:
            continue
        baselines[name] = Baseline(
            app=desired.app,
            env=desired.env,
            service=name,
            spec=applied[name],
            rendered=desired.services[name],
            version=live.version if live.spec == applied[name] else 0,
            spec_hash=desired.service_hashes[name],
            revision=desired.revision,
            updated_at=NOW,
        )
    return plan


def assert_nothing_to_do(plan: Plan) -> None:
    assert plan.empty and plan.in_sync, plan.as_dict()
    assert all(c.action == "unchanged" and not c.drift for c in plan.services), plan.as_dict()


def assert_runs_as_rendered(observed: StackState, desired: DesiredStack) -> None:
    assert {s.compose_name for s in observed.services} == set(desired.services)
    for name, service in desired.services.items():
        live = observed.service(name)
        assert live is not None
        container = live.spec["TaskTemplate"]["ContainerSpec"]
        assert container["Image"] == service["image"]
        environment = service.get("environment") or {}
        want = sorted(f"{k}={v}" for k, v in environment.items())
        assert sorted(container.get("Env") or []) == want
        deploy = service["deploy"]
        assert {k: v for k, v in live.labels.items() if k in deploy["labels"]} == deploy["labels"]
        if deploy.get("mode", "replicated") == "replicated":
            assert live.replicas == deploy.get("replicas", 1)
        for kind, key in (("configs", "Configs"), ("secrets", "Secrets")):
            names = {desired.compose[kind][ref["source"]]["name"] for ref in service.get(kind, [])}
            # the fake names a reference "Name", Docker "ConfigName"/"SecretName"
            used = {ref.get("Name") or ref[f"{key[:-1]}Name"] for ref in container.get(key, [])}
            assert used == names


@settings(max_examples=examples(30))
@given(repos())
def test_after_a_sync_the_plan_of_the_same_render_is_empty(repo: GeneratedRepo) -> None:
    desired = render(repo)
    swarm = FakeSwarm()
    baselines: dict[str, Baseline] = {}
    first = sync(swarm, desired, baselines)
    assert set(first.to_deploy) == set(desired.services)
    assert {o.name for o in first.create_objects} == {o.name for o in desired.objects}
    observed = swarm.observe(desired.stack)
    assert_runs_as_rendered(observed, desired)
    assert_nothing_to_do(make_plan(desired, observed, baselines, prune=True, heal=True))
    # a new commit with the same content: its own revision label, nothing to deploy
    again = render(repo, revision="b" * 40)
    assert again.service_hashes == desired.service_hashes
    writes = swarm.writes
    assert_nothing_to_do(sync(swarm, again, baselines))
    assert swarm.writes == writes


def test_the_fake_swarm_reads_the_file_as_docker_stack_deploy_does() -> None:
    """``$$`` in the deployable file is one ``$`` once deployed (the CLI interpolates
    it); the fake kept ``$$`` and so could not show a value escaped twice, or not at
    all. Found by the property above."""
    swarm = FakeSwarm()
    swarm.deploy(
        "s",
        "services:\n  web:\n    image: nginx\n    environment:\n      PRICE: $$5\n"
        "    deploy:\n      labels:\n        cost: $$$$\n",
        resolve_image="never",
    )
    (live,) = swarm.services("s")
    assert live.spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["PRICE=$5"]
    assert live.labels["cost"] == "$$"
    with pytest.raises(SwarmError, match=r"would interpolate '\$HOME'"):
        swarm.deploy(
            "s", "services:\n  web:\n    image: nginx\n    command: $HOME\n", resolve_image="never"
        )
