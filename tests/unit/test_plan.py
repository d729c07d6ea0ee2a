"""plan/: desired vs deployed — creates, updates with fields, drift, prune, orphans."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gitswarm.model.observed import ServiceState, StackState
from gitswarm.model.operation import Baseline
from gitswarm.model.stack import (
    LABEL_APP,
    LABEL_ENV,
    LABEL_OWNER,
    LABEL_SPEC_HASH,
    LABEL_STACK,
    DesiredStack,
    ObjectMaterial,
)
from gitswarm.plan import deployable_compose, diff, make_plan

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def desired(services: dict[str, dict[str, Any]], **extra: Any) -> DesiredStack:
    return DesiredStack(
        app="shop",
        env="dev",
        stack="shop-dev",
        revision="abc",
        compose={"services": services, "networks": {"n": {}}},
        service_hashes={name: f"h-{svc['image']}" for name, svc in services.items()},
        **extra,
    )


def live(
    name: str,
    image: str,
    *,
    owned: bool = True,
    version: int = 10,
    replicas: int = 1,
    app: str = "shop",
    env: str = "dev",
) -> ServiceState:
    labels = {LABEL_STACK: "shop-dev"}
    if owned:
        labels |= {
            LABEL_OWNER: "gitswarm",
            LABEL_APP: app,
            LABEL_ENV: env,
            LABEL_SPEC_HASH: f"h-{image}",
        }
    spec = {
        "Name": f"shop-dev_{name}",
        "Labels": labels,
        "Mode": {"Replicated": {"Replicas": replicas}},
        "TaskTemplate": {"ContainerSpec": {"Image": image}},
    }
    return ServiceState(
        id=f"id-{name}",
        name=f"shop-dev_{name}",
        labels=labels,
        spec=spec,
        version=version,
        replicas=replicas,
    )


def baseline(svc: ServiceState, rendered: dict[str, Any]) -> Baseline:
    return Baseline(
        app="shop",
        env="dev",
        updated_at=NOW,
        service=svc.compose_name,
        spec_hash=svc.spec_hash or "",
        revision="old",
        rendered=rendered,
        spec=svc.spec,
        version=svc.version,
    )


def test_nothing_changed_is_an_empty_plan() -> None:
    web = live("web", "a:1")
    plan = make_plan(
        desired({"web": {"image": "a:1"}}),
        StackState("shop-dev", (web,)),
        {"web": baseline(web, {"image": "a:1"})},
        prune=True,
        heal=True,
    )
    assert plan.empty and plan.in_sync
    assert [c.action for c in plan.services] == ["unchanged"]


def test_a_changed_image_updates_only_that_service_with_its_fields() -> None:
    web, api = live("web", "a:1"), live("api", "b:1")
    plan = make_plan(
        desired({"web": {"image": "a:2"}, "api": {"image": "b:1"}}),
        StackState("shop-dev", (web, api)),
        {"web": baseline(web, {"image": "a:1"}), "api": baseline(api, {"image": "b:1"})},
        prune=True,
        heal=True,
    )
    assert plan.to_deploy == ("web",)
    (change,) = [c for c in plan.services if c.service == "web"]
    assert [str(f) for f in change.fields] == ["image: 'a:1' -> 'a:2'"]


def test_a_new_service_is_created() -> None:
    plan = make_plan(
        desired({"web": {"image": "a:1"}}), StackState("shop-dev"), {}, prune=False, heal=False
    )
    assert plan.to_deploy == ("web",)
    assert plan.services[0].action == "create"


def test_manual_scale_is_drift_healed_or_only_reported() -> None:
    web = live("web", "a:1", version=10)
    base = baseline(web, {"image": "a:1"})
    scaled = live("web", "a:1", version=11, replicas=3)
    state = StackState("shop-dev", (scaled,))
    healed = make_plan(
        desired({"web": {"image": "a:1"}}), state, {"web": base}, prune=True, heal=True
    )
    assert healed.to_deploy == ("web",)
    (change,) = healed.drifted
    assert [(f.path, f.before, f.after) for f in change.drift] == [
        ("Mode.Replicated.Replicas", 1, 3)
    ]
    assert change.as_dict()["drift"][0]["field"] == "deploy.replicas"
    reported = make_plan(
        desired({"web": {"image": "a:1"}}), state, {"web": base}, prune=True, heal=False
    )
    assert reported.empty and not reported.in_sync


def test_same_version_means_no_drift_without_diffing() -> None:
    web = live("web", "a:1", version=10)
    base = Baseline(
        "shop", "dev", "web", {"different": True}, 10, "h-a:1", "old", NOW, {"image": "a:1"}
    )
    plan = make_plan(
        desired({"web": {"image": "a:1"}}),
        StackState("shop-dev", (web,)),
        {"web": base},
        prune=True,
        heal=True,
    )
    assert plan.in_sync


def test_a_removed_service_is_pruned_or_orphaned_but_foreign_ones_never() -> None:
    gone = live("old", "x:1")
    foreign = live("theirs", "y:1", owned=False)
    other_app = live("other", "z:1", app="billing")
    state = StackState("shop-dev", (gone, foreign, other_app))
    pruned = make_plan(desired({}), state, {}, prune=True, heal=True)
    assert [(c.service, c.action) for c in pruned.services] == [("old", "remove")]
    kept = make_plan(desired({}), state, {}, prune=False, heal=True)
    assert kept.orphans == ("old",) and kept.empty and not kept.in_sync


def test_missing_baseline_redeploys_once_on_sync() -> None:
    web = live("web", "a:1")
    plan = make_plan(
        desired({"web": {"image": "a:1"}}),
        StackState("shop-dev", (web,)),
        {},
        prune=True,
        heal=True,
    )
    assert plan.to_deploy == ("web",)
    assert plan.missing_baselines == ("web",)


def test_new_object_versions_are_created_existing_ones_reused() -> None:
    new = ObjectMaterial("config", "app", "shop-dev_app_222", b"x")
    plan = make_plan(
        desired({}, objects=(new,)), StackState("shop-dev"), {}, prune=False, heal=False
    )
    assert plan.create_objects == (new,)


def test_deployable_compose_keeps_only_the_changed_services() -> None:
    d = desired({"web": {"image": "a:1"}, "api": {"image": "b:1"}})
    compose = deployable_compose(d, ("web",))
    assert list(compose["services"]) == ["web"] and compose["networks"] == {"n": {}}


def test_diff_walks_maps_and_equal_lists() -> None:
    changes = list(diff({"a": [1, 2], "b": {"c": 1}}, {"a": [1, 3], "b": {}, "d": 4}))
    assert [str(c) for c in changes] == ["a[1]: 2 -> 3", "b.c: 1 -> (unset)", "d: (unset) -> 4"]


def test_the_plan_does_not_depend_on_the_order_the_engine_lists_services_in() -> None:
    """The engine lists services in no fixed order: the plan (and so `gitswarm plan`,
    status's orphans and the message naming them) is the same for every order."""
    kept = live("web", "a:1")
    gone = [live(name, "x:1") for name in ("zeta", "alpha", "mid")]
    wanted = desired({"web": {"image": "a:1"}})
    for prune in (True, False):
        plans = {
            make_plan(wanted, StackState("shop-dev", tuple(order)), {}, prune=prune, heal=False)
            for order in ([kept, *gone], [*reversed(gone), kept], [gone[1], kept, gone[2], gone[0]])
        }
        assert len(plans) == 1, plans
        (plan,) = plans
        names = [c.service for c in plan.services if c.action in ("remove", "orphan")]
        assert names == ["alpha", "mid", "zeta"]
