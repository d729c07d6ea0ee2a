"""A manual change that also rewrites (or removes) gitswarm's spec-hash label is still
drift: Argo CD compares live with desired whatever the labels say. When the baseline is
what Git wants, a live service with another hash label is drift against the baseline —
reported with its fields (the label among them), counted, alerted, healed with
self_heal. Not drift: what Swarm itself rolled back (healing it would roll the broken
revision out again) and what a failed deploy left behind (its failure says so).

The pure plan first, then the agent on the fake swarm (the rig of
test_agent_failure_paths); the real swarm runs the same in
tests/integration/test_drift_label_rewritten.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ServiceState, StackState, UpdateStatus
from gitswarm.model.stack import LABEL_REVISION, LABEL_SPEC_HASH
from gitswarm.plan import make_plan
from gitswarm.reconcile.agent.drift import ROUND
from gitswarm.reconcile.sync import SyncRequest
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import service
from tests.unit.test_agent_failure_paths import BROKEN, GOOD, Rig, make  # noqa: F401
from tests.unit.test_plan import baseline, desired, live

EVIL = "127.0.0.1:5000/evil:1"
WEB = "fails_web"


def _forged(svc: ServiceState, image: str, label: str | None, **extra: Any) -> ServiceState:
    """``svc`` after ``docker service update --image IMAGE --label-add hash=LABEL``."""
    labels = {k: v for k, v in svc.labels.items() if k != LABEL_SPEC_HASH}
    if label is not None:
        labels[LABEL_SPEC_HASH] = label
    spec = {
        **svc.spec,
        "Labels": labels,
        "TaskTemplate": {"ContainerSpec": {"Image": image}},
    }
    return dataclasses.replace(
        svc, labels=labels, spec=spec, version=svc.version + 1, previous_spec=svc.spec, **extra
    )


# --- the plan (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize("label", ["anything", None], ids=["rewritten", "removed"])
def test_a_change_with_the_label_rewritten_is_drift_against_the_baseline(
    label: str | None,
) -> None:
    web = live("web", "a:1")
    changed = _forged(web, "evil:1", label)
    args = (desired({"web": {"image": "a:1"}}), StackState("shop-dev", (changed,)))
    base = {"web": baseline(web, {"image": "a:1"})}

    healed = make_plan(*args, base, prune=True, heal=True)
    assert healed.to_deploy == ("web",)
    (change,) = healed.drifted
    drift = {(f.path, f.before, f.after) for f in change.drift}
    assert ("TaskTemplate.ContainerSpec.Image", "a:1", "evil:1") in drift
    assert (f"Labels.{LABEL_SPEC_HASH}", "h-a:1", label) in drift
    how = "rewritten" if label else "removed"
    assert change.note == f"gitswarm's spec-hash label {how} outside gitswarm"
    fields = {d["field"] for d in change.as_dict()["drift"]}
    assert {"image", f"deploy.labels.{LABEL_SPEC_HASH}"} <= fields

    reported = make_plan(*args, base, prune=True, heal=False)
    assert reported.empty and not reported.in_sync  # reported, left as it is
    assert [c.action for c in reported.services] == ["unchanged"]
    assert reported.drifted[0].drift == change.drift


def test_when_git_moved_it_stays_an_update_and_says_what_it_overwrites() -> None:
    web = live("web", "a:1")
    web = dataclasses.replace(web, labels={**web.labels, LABEL_REVISION: "old"})
    changed = _forged(web, "evil:1", "anything")
    plan = make_plan(
        desired({"web": {"image": "a:2"}}),  # Git moved: the deploy overwrites the change
        StackState("shop-dev", (changed,)),
        {"web": baseline(web, {"image": "a:1"})},
        prune=True,
        heal=False,
    )
    assert plan.to_deploy == ("web",)
    (change,) = plan.drifted
    assert change.action == "update"
    assert change.note == "changed on the swarm, gitswarm's spec-hash label rewritten; Git moved"
    assert ("TaskTemplate.ContainerSpec.Image", "a:1", "evil:1") in {
        (f.path, f.before, f.after) for f in change.drift
    }
    # what a failed deploy of another revision left: an update, nothing more said
    left = dataclasses.replace(changed, labels={**changed.labels, LABEL_REVISION: "bad"})
    plan = make_plan(
        desired({"web": {"image": "a:2"}}),
        StackState("shop-dev", (left,)),
        {"web": baseline(web, {"image": "a:1"})},
        prune=True,
        heal=False,
    )
    assert plan.to_deploy == ("web",) and not plan.drifted


def test_what_swarm_rolled_back_from_the_baseline_is_drift_that_heal_leaves_alone() -> None:
    before, deployed = live("web", "a:0", version=5), live("web", "a:1", version=10)
    # Swarm swapped Spec and PreviousSpec: the spec before the deploy, hash label included
    rolled = dataclasses.replace(
        before,
        version=12,
        previous_spec=deployed.spec,
        update_status=UpdateStatus("rollback_completed", "rollback completed"),
    )
    plan = make_plan(
        desired({"web": {"image": "a:1"}}),
        StackState("shop-dev", (rolled,)),
        {"web": baseline(deployed, {"image": "a:1"})},
        prune=True,
        heal=True,
    )
    assert plan.to_deploy == () and not plan.in_sync
    (change,) = plan.drifted
    assert not change.healable and change.action == "unchanged"
    assert change.note.startswith("rolled back by Swarm from what gitswarm deployed: not healed")


def test_what_a_failed_deploy_left_is_not_drift_but_a_change_on_top_of_it_is() -> None:
    web = live("web", "a:1")
    base = {"web": baseline(web, {"image": "a:1"})}
    # the failed deploy of revision "bad" wrote over the baseline, with its own hash
    left = _forged(web, "a:bad", "h-a:bad")
    left = dataclasses.replace(left, labels={**left.labels, LABEL_REVISION: "bad"})
    want = desired({"web": {"image": "a:1"}})
    plan = make_plan(
        want, StackState("shop-dev", (left,)), base, prune=True, heal=True, unsettled={"web": "bad"}
    )
    assert plan.to_deploy == ("web",) and not plan.drifted  # as today: an update
    on_top = _forged(left, "evil:1", "anything")  # its previous spec: the failed one's
    plan = make_plan(
        want, StackState("shop-dev", (on_top,)), base, prune=True, heal=False,
        unsettled={"web": "bad"},
    )  # fmt: skip
    assert [c.service for c in plan.drifted] == ["web"]


# --- the agent on the fake swarm ------------------------------------------------------------


def _attack(swarm: FakeSwarm, label: str | None = "anything") -> None:
    """``docker service update --image EVIL --label-add io.gitswarm.spec-hash=LABEL``
    (``label`` None: ``--label-rm``)."""

    def edit(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = EVIL
        if label is None:
            spec["Labels"].pop(LABEL_SPEC_HASH)
        else:
            spec["Labels"][LABEL_SPEC_HASH] = label

    swarm.update(WEB, edit)


def _round(rig: Rig) -> None:
    """One periodic drift round, and the checks it queues."""
    rig.agent.run_task(("drift-all",), TriggerRequest("agent", reason=ROUND))
    rig.agent.run_pending()


def _web(rig: Rig) -> ServiceState:
    [svc] = [s for s in rig.swarm.services("fails") if s.name == WEB]
    return svc


def test_the_drift_round_reports_counts_alerts_and_heals_a_rewritten_label(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    rig = make(sync={"self_heal": True})
    rig.poll()
    deployed = _web(rig)
    _attack(rig.swarm)
    _round(rig)

    [drift] = rig.ops("drift")
    assert drift.reason == "Drift"  # type: ignore[attr-defined]
    assert f"image: '{GOOD}' -> '{EVIL}'" in drift.message  # type: ignore[attr-defined]
    assert "spec-hash label rewritten outside gitswarm" in drift.message  # type: ignore[attr-defined]
    [heal] = rig.ops("heal")
    assert heal.result == "Succeeded"  # type: ignore[attr-defined]
    healed = _web(rig)
    assert healed.image == GOOD and healed.spec_hash == deployed.spec_hash
    assert rig.metric("gitswarm_drift_events_total", app="app", env="dev", action="detected") == 1
    assert rig.metric("gitswarm_drift_events_total", app="app", env="dev", action="healed") == 1
    assert rig.sent.kinds().count("drift_detected") == 1
    assert rig.sent.kinds().count("drift_healed") == 1
    status = rig.status()
    assert status.sync == "Synced" and not status.drift  # type: ignore[attr-defined]
    writes = rig.swarm.writes
    _round(rig)  # healed: nothing more to do
    assert rig.swarm.writes == writes and len(rig.ops("drift")) == 1


@pytest.mark.parametrize("label", ["anything", None], ids=["rewritten", "removed"])
def test_without_self_heal_it_is_reported_and_diff_shows_it(
    make: Callable[..., Rig],  # noqa: F811
    label: str | None,
) -> None:
    from gitswarm.cli.ops import plan_lines

    rig = make()
    rig.poll()
    _attack(rig.swarm, label)
    _round(rig)
    status = rig.status()
    assert status.sync == "OutOfSync" and list(status.drift) == ["web"]  # type: ignore[attr-defined]
    how = "rewritten" if label else "removed"
    assert f"spec-hash label {how} outside gitswarm" in status.message  # type: ignore[attr-defined]
    fields = {d["field"] for d in status.drift["web"]["drift"]}  # type: ignore[attr-defined]
    assert {"image", f"deploy.labels.{LABEL_SPEC_HASH}"} <= fields
    assert _web(rig).image == EVIL and rig.ops("heal") == []  # left as it is

    # `gitswarm diff` (a dry-run sync of Git's head) says the same
    dry = rig.agent.reconciler.sync(SyncRequest("app", "dev", dry_run=True))
    lines = plan_lines(dry.plan)  # type: ignore[arg-type]
    assert lines[0] == f"  ~ web: update  (gitswarm's spec-hash label {how} outside gitswarm)"
    assert f"      drift image: '{GOOD}' -> '{EVIL}'" in lines
    # and a sync of it (a person's `gitswarm sync`: heal) puts Git's spec back
    outcome = rig.agent.reconciler.sync(SyncRequest("app", "dev"))
    assert outcome.result == "Succeeded" and _web(rig).image == GOOD


@pytest.mark.parametrize("auto_rollback", [True, False], ids=["auto-rollback", "no-rollback"])
def test_swarms_rollback_of_a_failed_deploy_is_never_healed_into_a_redeploy(
    make: Callable[..., Rig],  # noqa: F811
    auto_rollback: bool,
) -> None:
    rig = make(sync={"self_heal": True, "auto_rollback": auto_rollback})
    rig.poll()
    good = rig.status().revision  # type: ignore[attr-defined]
    before = _web(rig).spec
    rig.swarm.rollback_images.add(BROKEN)  # failure_action: rollback
    rig.repo.compose({"web": service(BROKEN)})
    bad = rig.repo.commit("bad")
    rig.poll()
    status = rig.status()
    assert status.reason == "SwarmRolledBack"  # type: ignore[attr-defined]
    assert status.last_result == ("RolledBack" if auto_rollback else "Failed")  # type: ignore[attr-defined]
    assert rig.store.is_bad("app", "dev", bad) == auto_rollback
    writes = rig.swarm.writes
    for _ in range(3):
        _round(rig)
    assert rig.swarm.writes == writes  # nothing redeployed
    assert rig.ops("heal") == [] and rig.ops("drift") == []
    assert _web(rig).spec == before and rig.status().revision == good  # type: ignore[attr-defined]
    assert [o.revision for o in rig.ops("sync") if o.result == "Failed"] == [bad]  # type: ignore[attr-defined]


def test_swarm_rolling_back_a_deploy_recorded_healthy_is_reported_not_redeployed(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    rig = make(sync={"self_heal": True})
    rig.poll()
    rig.repo.compose({"web": service(GOOD, environment={"V": "2"})})
    second = rig.repo.commit("second")
    rig.poll()
    assert rig.status().revision == second  # type: ignore[attr-defined]
    rig.swarm.rollback(WEB)  # `docker service rollback`: the first revision's spec and label
    writes = rig.swarm.writes
    for _ in range(3):
        _round(rig)
    assert rig.swarm.writes == writes and rig.ops("heal") == []
    status = rig.status()
    assert status.sync == "OutOfSync" and list(status.drift) == ["web"]  # type: ignore[attr-defined]
    assert "rolled back by Swarm from what gitswarm deployed: not healed" in (
        status.message  # type: ignore[attr-defined]
    )
    assert rig.sent.kinds().count("drift_detected") == 1  # alerted once


def test_what_a_failed_deploy_left_is_not_healed_back(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    rig = make(sync={"self_heal": True})
    rig.poll()
    rig.repo.compose({"web": service(BROKEN)})
    bad = rig.repo.commit("bad")
    rig.poll()
    assert rig.status().last_result == "Failed"  # type: ignore[attr-defined]
    writes = rig.swarm.writes
    for _ in range(2):
        _round(rig)
    assert rig.swarm.writes == writes and rig.ops("heal") == [] and rig.ops("drift") == []
    assert _web(rig).image == BROKEN and _web(rig).revision == bad
    _attack(rig.swarm)  # someone changes it on top of that: drift, healed to the good one
    _round(rig)
    assert [o.reason for o in rig.ops("drift")] == ["Drift"]  # type: ignore[attr-defined]
    assert _web(rig).image == GOOD


def test_a_heal_puts_gits_image_back_though_the_stack_label_still_names_it(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    """`docker stack deploy --resolve-image changed` keeps a service's live image while
    the image as written (its `com.docker.stack.image` label) has not changed: a heal of
    a manual image change must resolve images, or it leaves the image as someone set it."""
    rig = make(sync={"self_heal": True})
    rig.poll()

    def image_only(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = EVIL

    rig.swarm.update(WEB, image_only)
    rig.agent.run_task(("drift", "app", "dev"), TriggerRequest("agent"))
    assert _web(rig).image == GOOD
    assert [o.result for o in rig.ops("heal")] == ["Succeeded"]  # type: ignore[attr-defined]
    rig.agent.run_task(("drift", "app", "dev"), TriggerRequest("agent"))
    assert len(rig.ops("heal")) == 1 and rig.status().sync == "Synced"  # type: ignore[attr-defined]


def test_a_failed_revision_synced_again_is_judged_again_not_taken_as_in_sync(
    make: Callable[..., Rig],  # noqa: F811
) -> None:
    """Its services carry Git's hash after the failed deploy: the label is no proof that
    it was deployed (nor healthy), so a sync of it again deploys and waits again."""
    rig = make()
    rig.poll()
    rig.repo.compose({"web": service(BROKEN)})
    rig.repo.commit("bad")
    rig.poll()
    assert rig.status().last_result == "Failed"  # type: ignore[attr-defined]
    outcome = rig.agent.reconciler.sync(SyncRequest("app", "dev", heal=False))
    assert outcome.result == "Failed" and outcome.reason == "TasksFailing", outcome.message
    status = rig.status()
    assert (status.health, status.last_result) == ("Degraded", "Failed")  # type: ignore[attr-defined]
