"""Baselines are what gitswarm applied, never what the swarm showed after the wait
(issue 12): a manual change made while a sync rolls a service out is drift once the sync
ends — reported with its fields, and reverted with self_heal. The real-swarm test of the
same race is tests/integration/test_agent_drift.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ServiceState, TaskState
from gitswarm.model.stack import LABEL_SPEC_HASH, LABEL_STACK
from gitswarm.plan import applied_spec
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

STACK = "race"
WORKER = f"{STACK}_worker"


@dataclass
class RacingSwarm(FakeSwarm):
    """Someone runs ``during`` on the swarm once, while the next deploy converges (the
    first poll of its tasks) or, with ``at_once``, the moment the deploy returns."""

    during: Any = None
    at_once: bool = False
    armed: bool = False
    fired: list[str] = field(default_factory=list)

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: Any) -> None:
        super().deploy(stack, compose_yaml, resolve_image=resolve_image)
        if self.armed and self.at_once:
            self._fire()

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        if self.armed and not self.at_once:
            self._fire()
        return super().tasks(service_ids)

    def _fire(self) -> None:
        self.armed = False
        self.during(self)
        self.fired.append("fired")


@dataclass
class Rig:
    repo: GitOpsRepo
    swarm: RacingSwarm
    store: Store
    agent: Agent

    def commit(self, env: str) -> str:
        self.repo.compose({"worker": service(environment={"V": env}), "web": service()})
        return self.repo.commit(f"worker {env}")

    def poll(self) -> None:
        self.agent.git.check(TriggerRequest("poll"))
        self.agent.run_pending()

    def worker(self) -> ServiceState:
        [svc] = [s for s in self.swarm.services(STACK) if s.name == WORKER]
        return svc


def _rig(tmp_path: Path, self_heal: bool) -> Rig:
    repo = GitOpsRepo(tmp_path / "repo", STACK)
    repo.sync = {"prune": True, "self_heal": self_heal, "health_timeout": 30}
    repo.write_settings()
    swarm = RacingSwarm()
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo.path))
    reconciler = Reconciler(source, store, lambda _t: swarm)
    settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    return Rig(repo, swarm, store, agent)


def _scale(swarm: FakeSwarm) -> None:
    swarm.scale(WORKER, 3)


def _env_add(swarm: FakeSwarm) -> None:
    swarm.add_env(WORKER, "DEBUG=1")


def _rewrite(swarm: FakeSwarm) -> None:
    """``docker service update --image ... --label-add io.gitswarm.spec-hash=anything``."""

    def edit(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = "127.0.0.1:5000/evil:1"
        spec["Labels"][LABEL_SPEC_HASH] = "anything"

    swarm.update(WORKER, edit)


CHANGES = {
    "scale": (_scale, "deploy.replicas: 1 -> 3"),
    "env-add": (_env_add, "environment"),
    "label-rewritten": (_rewrite, "spec-hash label rewritten outside gitswarm"),
}


@pytest.mark.parametrize("at_once", [False, True], ids=["during-the-wait", "right-after-deploy"])
@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("self_heal", [True, False], ids=["self-heal", "report-only"])
def test_a_manual_change_during_a_sync_is_drift_once_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, at_once: bool, self_heal: bool
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    rig = _rig(tmp_path, self_heal)
    act, words = CHANGES[change]
    with rig.store:
        rig.commit("1")
        rig.poll()
        assert rig.store.get_status("app", "dev").sync == "Synced"  # type: ignore[union-attr]
        rig.swarm.during, rig.swarm.at_once, rig.swarm.armed = act, at_once, True
        second = rig.commit("2")
        rig.poll()
        assert rig.swarm.fired == ["fired"]

        syncs = [o for o in rig.store.history(app="app", env="dev") if o.kind == "sync"]
        assert syncs[0].revision == second and syncs[0].result == "Succeeded"
        assert "changed on the swarm during the sync: worker (" in syncs[0].message
        assert words in syncs[0].message
        drifts = [o for o in rig.store.history(app="app", env="dev") if o.kind == "drift"]
        assert len(drifts) == 1 and words in drifts[0].message
        status = rig.store.get_status("app", "dev")
        assert status is not None and status.revision == second
        spec = rig.worker().spec
        if self_heal:  # reverted to what Git says
            assert rig.store.history(app="app", env="dev")[0].kind == "heal"
            assert spec["Mode"]["Replicated"]["Replicas"] == 1
            assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=2"]
            assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == "127.0.0.1:5000/busybox:1"
            assert (
                spec["Labels"][LABEL_SPEC_HASH]
                == rig.store.baselines("app", "dev")["worker"].spec_hash
            )
            assert status.sync == "Synced" and not status.drift
        else:  # reported, left alone
            assert status.sync == "OutOfSync" and list(status.drift) == ["worker"]
            assert words in status.message
            assert spec["Mode"]["Replicated"]["Replicas"] == (3 if change == "scale" else 1)
            baseline = rig.store.baselines("app", "dev")["worker"]
            assert baseline.spec["Mode"] == {"Replicated": {"Replicas": 1}}
            assert baseline.spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=2"]


def test_a_sync_nobody_interferes_with_leaves_no_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    rig = _rig(tmp_path, self_heal=False)
    with rig.store:
        rig.commit("1")
        rig.poll()
        rig.commit("2")
        rig.poll()
        status = rig.store.get_status("app", "dev")
        assert status is not None and status.sync == "Synced" and not status.drift
        assert not [o for o in rig.store.history(app="app", env="dev") if o.kind == "drift"]
        # the baseline's version says "nothing wrote since": no diff on later checks
        assert rig.store.baselines("app", "dev")["worker"].version == rig.worker().version


def test_the_cli_sync_reports_a_change_made_during_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    rig = _rig(tmp_path, self_heal=False)
    with rig.store:
        rig.commit("1")
        reconciler = rig.agent.reconciler
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        rig.swarm.during, rig.swarm.armed = _scale, True
        rig.commit("2")
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.result == "Succeeded" and outcome.exit_code == 0
        assert [c.service for c in outcome.drifted] == ["worker"]
        status = rig.store.get_status("app", "dev")
        assert status is not None and status.sync == "OutOfSync"
        assert status.drift["worker"]["drift"][0]["field"] == "deploy.replicas"


# --- applied_spec: the read, PreviousSpec, or the read corrected by the render -------

RENDERED = {
    "image": "127.0.0.1:5000/busybox:1",
    "environment": {"V": "2"},
    "deploy": {"replicas": 1, "labels": {"io.gitswarm.app": "app"}},
}


def _spec(replicas: int = 1, env: tuple[str, ...] = ("V=2",), **labels: str) -> dict[str, Any]:
    return {
        "Name": WORKER,
        "Labels": {
            LABEL_STACK: STACK,
            "com.docker.stack.image": "127.0.0.1:5000/busybox:1",
            "io.gitswarm.app": "app",
            **labels,
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "127.0.0.1:5000/busybox:1@sha256:" + "a" * 64,
                "Env": list(env),
                "Init": True,
            },
        },
    }


def _read(spec: dict[str, Any], previous: dict[str, Any] | None = None) -> ServiceState:
    return ServiceState("s1", WORKER, spec["Labels"], spec, 9, previous_spec=previous)


def test_the_read_right_after_the_deploy_is_the_baseline_when_it_is_what_git_says() -> None:
    spec = _spec()
    assert applied_spec(_read(spec, _spec(env=("V=1",))), RENDERED) is spec


def test_a_change_between_the_deploy_and_the_read_falls_back_to_previous_spec() -> None:
    ours = _spec()
    assert applied_spec(_read(_spec(replicas=3), ours), RENDERED) is ours
    assert applied_spec(_read(_spec(env=("DEBUG=1", "V=2")), ours), RENDERED) is ours


def test_otherwise_the_checked_fields_are_set_to_what_git_says() -> None:
    manual = _spec(replicas=3, env=("DEBUG=1", "V=2"), extra="x")
    manual["TaskTemplate"]["ContainerSpec"]["Image"] = "127.0.0.1:5000/busybox:2@sha256:b"
    got = applied_spec(_read(manual, _spec(replicas=5)), RENDERED)
    assert got["Mode"] == {"Replicated": {"Replicas": 1}}
    assert got["TaskTemplate"]["ContainerSpec"]["Env"] == ["V=2"]
    assert got["TaskTemplate"]["ContainerSpec"]["Image"] == "127.0.0.1:5000/busybox:1"
    assert got["TaskTemplate"]["ContainerSpec"]["Init"] is True  # the rest as read
    assert "extra" not in got["Labels"] and got["Labels"][LABEL_STACK] == STACK
    assert manual["Mode"] == {"Replicated": {"Replicas": 3}}  # the read is not changed


def test_what_the_cli_fills_in_is_not_taken_for_a_manual_change() -> None:
    rendered = {**RENDERED, "image": "127.0.0.1:5000/busybox", "deploy": {"labels": {}}}
    spec = _spec()
    spec["Labels"].pop("io.gitswarm.app")
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = "127.0.0.1:5000/busybox:latest@sha256:c"
    assert applied_spec(_read(spec), rendered) is spec  # ":latest", a digest, replicas 1
    # an entry without a value may be filled in by the CLI: not checked
    filled = _spec(env=("V=x",))
    assert applied_spec(_read(filled), {**RENDERED, "environment": {"V": None}}) is filled
