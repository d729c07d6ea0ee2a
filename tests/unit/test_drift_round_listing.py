"""The drift round's listing decoded into only what the round reads (issue 18), and every
kind of drift still seen through it.

At 1,000 apps x 5 services the round's one ``GET /services`` is 17 MB of JSON; decoded
whole it was 70 MB of objects at the agent's peak and most of the round's CPU. Now
swarm/listing.py decodes ID, version, name, labels, mode, update status and keeps each
``Spec`` as JSON (``LazySpec``) until something reads it. The round never needed the
spec of a service whose version is its baseline's (nothing has written it since); a
service someone changed has a new version, looks drifted and is read again in full by its
check. These tests pin down both halves: the decode is the old one field for field, and
a manual change of each kind of field is still reported after a round.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitswarm.errors import SwarmError
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import LazySpec, ServiceState, StackState
from gitswarm.plan import make_plan
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.listing import services_by_stack
from gitswarm.swarm.port import service_state
from tests.gitops import GitOpsRepo, service

# --- the decode ---------------------------------------------------------------------------

NS = 1_000_000_000


def _engine_service(i: int, **over: Any) -> dict[str, Any]:
    """A service as dockerd 20.10 lists it after ``docker stack deploy``."""
    stack = f"s{i % 3}"
    spec: dict[str, Any] = {
        "Name": f"{stack}_svc{i}",
        "Labels": {"com.docker.stack.namespace": stack, "io.gitswarm.spec-hash": f"h{i}"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "127.0.0.1:5000/busybox:1@sha256:" + "c" * 64,
                "Env": ["A=1", "B=two"],
                "Labels": {"com.docker.stack.namespace": stack},
                "Init": True,
                "StopGracePeriod": NS,
            },
            "Resources": {"Limits": {"NanoCPUs": 100_000_000, "MemoryBytes": 33554432}},
            "RestartPolicy": {"Condition": "any", "Delay": 5 * NS, "MaxAttempts": 0},
            "Networks": [{"Target": "k3v0qk1v9j2w8d4x5z6y7a8b9", "Aliases": ["svc"]}],
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": {"Replicated": {"Replicas": i % 4}},
        "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Order": "stop-first"},
        "EndpointSpec": {"Mode": "vip"},
    }
    raw: dict[str, Any] = {
        "ID": f"id{i:023d}",
        "Version": {"Index": 100 + i},
        "CreatedAt": "2026-12-01T19:01:02.123456789Z",
        "UpdatedAt": "2026-12-01T19:31:02.123456Z",
        "Spec": spec,
        "PreviousSpec": copy.deepcopy(spec),
        "Endpoint": {"Spec": {"Mode": "vip"}},
    }
    raw.update(over)
    return raw


def _fields(s: ServiceState) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "labels": dict(s.labels),
        "spec": dict(s.spec),
        "version": s.version,
        "mode": s.mode,
        "replicas": s.replicas,
        "update_status": s.update_status,
        "updated_at": s.updated_at,
        "previous_spec": s.previous_spec,
    }


MODES = st.sampled_from(
    [
        {"Replicated": {"Replicas": 3}},
        {"Replicated": {}},
        {"Global": {}},
        {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 4}},
        {"ReplicatedJob": {}},
        {"GlobalJob": {}},
        {},
    ]
)
UPDATE = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries(
        {"State": st.sampled_from(["updating", "completed", "rollback_paused"])},
        optional={
            "Message": st.text(max_size=20),
            "StartedAt": st.sampled_from(["2026-12-01T19:31:02Z", "0001-01-01T00:00:00Z"]),
            "CompletedAt": st.sampled_from(["2026-12-01T19:32:02.5Z", "not a time"]),
        },
    ),
)
LABELS = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(["a", "b", "com.docker.stack.namespace"]), st.text())
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(MODES, UPDATE, LABELS, st.booleans(), st.booleans()), min_size=0, max_size=6)
)
def test_the_rounds_decode_is_the_full_decode_without_previous_spec(
    variants: list[tuple[dict[str, Any], dict[str, Any] | None, Any, bool, bool]],
) -> None:
    raws = []
    for i, (mode, update, labels, with_version, with_updated) in enumerate(variants):
        raw = _engine_service(i)
        raw["Spec"]["Mode"] = mode
        if labels is None:
            raw["Spec"].pop("Labels")
        else:
            raw["Spec"]["Labels"] = labels
        if update is not None:
            raw["UpdateStatus"] = update
        if not with_version:
            raw.pop("Version")
        if not with_updated:
            raw.pop("UpdatedAt")
        raws.append(raw)
    listed = services_by_stack(json.dumps(raws).encode())
    expected: dict[str, list[dict[str, Any]]] = {}
    for raw in raws:
        old = service_state(raw, previous=False)
        expected.setdefault(old.labels.get("com.docker.stack.namespace", ""), []).append(
            _fields(old)
        )
    assert {k: [_fields(s) for s in v] for k, v in listed.items()} == expected
    assert all(isinstance(s.spec, LazySpec) for v in listed.values() for s in v)


def test_a_spec_is_decoded_only_when_read_and_then_behaves_as_the_dict() -> None:
    raw = _engine_service(1)
    (svc,) = services_by_stack(json.dumps([raw]).encode())["s1"]
    spec = svc.spec
    assert isinstance(spec, LazySpec) and not spec.decoded
    assert svc.name == "s1_svc1" and svc.replicas == 1 and svc.version == 101  # no decode
    assert svc.spec_hash == "h1" and svc.compose_name == "svc1"
    assert not spec.decoded
    assert svc.image == raw["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert spec.decoded
    assert spec == raw["Spec"] and raw["Spec"] == spec and spec != {"Name": "x"}
    assert dict(spec) == raw["Spec"] and len(spec) == len(raw["Spec"])
    assert "TaskTemplate" in spec and "PreviousSpec" not in spec
    assert spec.get("nope", 7) == 7 and sorted(spec) == sorted(raw["Spec"])
    assert json.loads(json.dumps(dict(spec))) == raw["Spec"]
    assert svc.template_digest == service_state(raw).template_digest


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "JSON is malformed: invalid character (byte 4)"),
        (b'{"message": "no"}', "Expected `array`, got `object`"),
        (b'[{"Spec": {}}]', "Object missing required field `ID` - at `$[0]`"),
        (b'[{"ID": "x", "Version": {"Index": "7"}}]', "Expected `int`, got `str` - at `$[0].Version.Index`"),  # noqa: E501
        (b'[{"ID": "x", "Spec": []}]', "Expected `object`, got `array` in the Spec of service x"),
        (b'[{"ID": "x", "Spec": {"Mode": {"Replicated": {"Replicas": "2"}}}}]',
         "Expected `int`, got `str` - at `$.Mode.Replicated.Replicas` in the Spec of service x"),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_a_listing_is_a_swarm_error_that_says_so(
    body: bytes, detail: str
) -> None:
    with pytest.raises(SwarmError) as caught:
        services_by_stack(body)
    assert str(caught.value.message) == (
        f"list the services of every stack: the engine's answer is not a listing of "
        f"services ({detail})"
    )


# --- every kind of drift, through a round --------------------------------------------------


@dataclass
class CountingSwarm(FakeSwarm):
    reads: Counter[str] = field(default_factory=Counter)
    listings: list[dict[str, list[ServiceState]]] = field(default_factory=list)

    def services(self, stack: str) -> list[ServiceState]:
        self.reads["services"] += 1
        return super().services(stack)

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        self.reads["services_by_stack"] += 1
        listing = super().services_by_stack()
        self.listings.append(listing)
        return listing


@dataclass
class Deployed:
    agent: Agent
    swarm: CountingSwarm
    store: Store
    reconciler: Reconciler

    def round(self) -> None:
        self.swarm.reads.clear()
        self.swarm.listings.clear()
        self.agent.enqueue(("drift-all",), TriggerRequest("agent"))
        self.agent.run_pending()

    def drift(self) -> str:
        status = self.store.get_status("app", "dev")
        assert status is not None
        return status.message if status.drift else ""


@pytest.fixture()
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """App ``app`` (stack ``shop``, services web and api) synced to a fake swarm; an agent
    without threads or Docker events on it, its first rounds done."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service(), "api": service()})
    repo.commit("first")
    swarm = CountingSwarm()
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo.path))
    reconciler = Reconciler(source, store, lambda _target: swarm)
    assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
    settings = AgentSettings(events=False, poll_interval=3600, drift_interval=3600)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    agent.enqueue(("git",), TriggerRequest("poll"))
    agent.state.set_leader(True)
    agent.run_pending()
    found = Deployed(agent, swarm, store, reconciler)
    found.round()  # the first: the health round assesses every app (reads their specs)
    found.round()
    try:
        yield found
    finally:
        store.close()


def test_a_quiet_round_reads_no_spec_of_its_listing(deployed: Deployed) -> None:
    deployed.round()
    assert deployed.swarm.reads == Counter({"services_by_stack": 1})
    (listing,) = deployed.swarm.listings
    specs = [s.spec for s in listing["shop"]]
    assert len(specs) == 2 and all(isinstance(s, LazySpec) for s in specs)
    assert not any(s.decoded for s in specs)  # type: ignore[attr-defined]
    assert deployed.drift() == ""


def test_the_health_round_reads_an_apps_specs_to_assess_it_and_keeps_none_decoded(
    deployed: Deployed,
) -> None:
    """A round in which every app is assessed again (the first one, or after tasks
    changed) decodes their specs, one app at a time, and releases them: 5,000 decoded
    specs held to the end of the round would be most of the old peak again."""
    status = deployed.store.get_status("app", "dev")
    assert status is not None and status.health == "Healthy"
    deployed.swarm.crash_tasks("shop_web")  # no event: only the round's health check sees it
    deployed.round()
    status = deployed.store.get_status("app", "dev")
    assert status is not None and status.health != "Healthy"  # assessed, from the specs
    (listing,) = deployed.swarm.listings
    specs = [s.spec for s in listing["shop"]]
    assert specs and all(isinstance(s, LazySpec) and not s.decoded for s in specs)
    assert deployed.drift() == ""  # tasks died; no spec was changed


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit setting ``path`` (dotted, in the service's Spec) to ``value``."""

    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


def _add(path: str, item: Any) -> Callable[[dict[str, Any]], None]:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = [*(node.get(last) or []), item]

    return edit


SECRET = {"File": {"Name": "/run/secrets/x", "UID": "0", "GID": "0", "Mode": 292}}
CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # kind of field: (the manual change, what the drift report names)
    "replicas": (_set("Mode.Replicated.Replicas", 4), "deploy.replicas: 1 -> 4"),
    "image": (_set("TaskTemplate.ContainerSpec.Image", "evil:1"), "image: "),
    "env": (_add("TaskTemplate.ContainerSpec.Env", "DEBUG=1"), "environment"),
    "service labels": (_set("Labels.owner", "mallory"), "deploy.labels.owner: None -> 'mallory'"),
    "container labels": (
        _set("TaskTemplate.ContainerSpec.Labels.x", "1"), "labels: None -> {'x': '1'}"
    ),
    "networks": (_add("TaskTemplate.Networks", {"Target": "evil-net"}), "TaskTemplate.Networks"),
    "mounts": (
        _add("TaskTemplate.ContainerSpec.Mounts", {"Type": "bind", "Source": "/", "Target": "/h"}),
        "TaskTemplate.ContainerSpec.Mounts",
    ),
    "configs": (
        _add("TaskTemplate.ContainerSpec.Configs", {**SECRET, "ConfigID": "c1", "ConfigName": "c"}),
        "TaskTemplate.ContainerSpec.Configs",
    ),
    "secrets": (
        _add("TaskTemplate.ContainerSpec.Secrets", {**SECRET, "SecretID": "s1", "SecretName": "s"}),
        "TaskTemplate.ContainerSpec.Secrets",
    ),
    "resources": (
        _set("TaskTemplate.Resources", {"Limits": {"MemoryBytes": 1 << 30}}),
        "deploy.resources: None -> {'Limits'",
    ),
    "placement": (
        _set("TaskTemplate.Placement", {"Constraints": ["node.role==worker"]}),
        "deploy.placement: None -> {'Constraints'",
    ),
    "update config": (
        _set("UpdateConfig", {"Parallelism": 9}), "UpdateConfig: None -> {'Parallelism': 9}"
    ),
    "rollback config": (_set("RollbackConfig", {"Order": "start-first"}), "RollbackConfig"),
    "ports": (
        _set("EndpointSpec", {"Mode": "vip", "Ports": [{"TargetPort": 22, "PublishedPort": 2222}]}),
        "ports: None -> {'Mode': 'vip', 'Ports'",
    ),
    "command": (_set("TaskTemplate.ContainerSpec.Args", ["sh", "-c", "id"]), "command"),
    "healthcheck": (
        _set("TaskTemplate.ContainerSpec.Healthcheck", {"Test": ["NONE"]}), "Healthcheck"
    ),
    "restart policy": (_set("TaskTemplate.RestartPolicy", {"Condition": "none"}), "RestartPolicy"),
    "user": (_set("TaskTemplate.ContainerSpec.User", "root"), "TaskTemplate.ContainerSpec.User"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_a_round_reports_a_manual_change_of_each_kind_of_field(
    deployed: Deployed, kind: str
) -> None:
    edit, named = CHANGES[kind]
    writes = deployed.swarm.writes
    deployed.swarm.update("shop_web", edit)
    deployed.round()
    report = deployed.drift()
    assert report.startswith("drift: web (") or "web (" in report, report
    assert named in report, report
    assert "api (" not in report  # the other service was not changed
    # the round's listing flagged it; its check read the stack once, in full
    assert deployed.swarm.reads == Counter({"services_by_stack": 1, "services": 1})
    assert deployed.swarm.writes == writes  # self_heal is off: reported only


# --- and any change at all, at the plan the round makes ------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path


@pytest.fixture()
def rounds_view(deployed: Deployed) -> tuple[Deployed, Any]:
    status = deployed.store.get_status("app", "dev")
    assert status is not None and status.revision
    rendered = deployed.agent.state.render_of("app", "dev", status.revision)
    assert rendered is not None
    return deployed, rendered


def _dotted(path: tuple[Any, ...]) -> str:
    """``path`` as plan/diff.py names a field: ``a.b[0].c``."""
    out = ""
    for key in path:
        out = f"{out}[{key}]" if isinstance(key, int) else (f"{out}.{key}" if out else key)
    return out


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_change_of_any_field_makes_the_round_flag_the_service_and_its_check_name_it(
    rounds_view: tuple[Deployed, Any], data: st.DataObject
) -> None:
    """Whatever leaf of the live spec someone changes (the engine bumps the version), the
    round's plan — the listing as decoded now, the baselines without specs — flags the
    service, and the check's plan (the stack read in full, the full baselines) names
    that very field."""
    deployed, rendered = rounds_view
    swarm, store = deployed.swarm, deployed.store
    live = {s.name: s for s in swarm.services("shop")}
    web = live["shop_web"]
    path = data.draw(st.sampled_from(sorted(_leaves(dict(web.spec)), key=repr)))
    spec = copy.deepcopy(dict(web.spec))
    node: Any = spec
    for key in path[:-1]:
        node = node[key]
    old = node[path[-1]]
    # a value of the field's own type (the engine's types are fixed), or of any for a
    # field that holds a document
    values = {bool: st.booleans(), int: st.integers(0, 2**40), str: st.text(max_size=5)}
    value = data.draw(values.get(type(old), st.one_of(st.integers(), st.text(), st.none())))
    if value == old:
        value = (old + 1) if isinstance(old, int) and not isinstance(old, bool) else [old]
    node[path[-1]] = value
    raws = [
        {"ID": s.id, "Version": {"Index": s.version + (s is web)}, "Spec": spec if s is web
         else dict(s.spec)} for s in live.values()
    ]  # fmt: skip
    listed = services_by_stack(json.dumps(raws).encode()).get("shop", [])
    light = store.all_baselines(specs=False)[("app", "dev")]
    stack = rendered.desired.stack
    observed = StackState(stack, tuple(listed))
    plan = make_plan(rendered.desired, observed, light, prune=False, heal=False)
    # the spec-hash label too: drift whatever the labels say (test_drift_label_rewritten)
    assert [c.service for c in plan.drifted] == ["web"], (path, plan.services)
    read = [service_state(r) for r in raws]  # the check's own read, decoded in full
    ours = [s for s in read if s.stack == "shop"]
    full = store.baselines("app", "dev")
    observed = StackState(stack, tuple(ours))
    checked = make_plan(rendered.desired, observed, full, prune=False, heal=False)
    (change,) = checked.drifted
    if path in (("Name",), ("Labels", "com.docker.stack.namespace")):
        assert change.note == "missing"  # no longer a service of this stack by that name
    else:
        assert _dotted(path) in [f.path for f in change.drift], (path, change.drift)
