"""What a sync reads from Docker after its deploy, and how soon it looks at health.

At 1,000 apps every listing of a stack's services was a scan of the swarm's 5,000 by the
engine, and a one-app commit made five (plan, read_applied, each health poll, baselines,
GC): it synced 2.2 s after the floor (bench/README.md, issue 18). Now read_applied's read
is the health wait's first poll, one read after the wait serves the baselines and the
garbage collection, the poll pauses 50 ms first, and the engine is asked for the stack's
name prefix (swarm/port.py ``stack_filters``, its index). The real-swarm side:
tests/integration/test_stack_listing.py; bench/noop.py measures it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from gitswarm.model.observed import ServiceState, TaskState, UpdateStatus
from gitswarm.reconcile.apply import Clock, wait_converged
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


@dataclass
class CountingSwarm(FakeSwarm):
    reads: Counter[str] = field(default_factory=Counter)
    updating_polls: int = 0  # the next N task reads see the deployed services updating

    def services(self, stack: str) -> list[ServiceState]:
        self.reads["services"] += 1
        listed = super().services(stack)
        if self.updating_polls > 0:
            return [replace(s, update_status=UpdateStatus("updating")) for s in listed]
        return listed

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        self.reads["tasks"] += 1
        self.updating_polls = max(0, self.updating_polls - 1)
        return super().tasks(service_ids)

    def observe(self, stack: str):  # type: ignore[no-untyped-def]
        self.reads["observe"] += 1
        return super().observe(stack)


def _deployed(tmp_path: Path) -> tuple[GitOpsRepo, CountingSwarm, Store, Reconciler[Store]]:
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service(), "api": service()})
    repo.commit("first")
    swarm = CountingSwarm()
    store = Store(str(tmp_path / "state.db"))
    reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
    assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
    return repo, swarm, store, reconciler


def test_a_sync_that_deploys_lists_the_stack_three_times_not_five(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo, swarm, store, reconciler = _deployed(tmp_path)
    with store:
        repo.compose({"web": service("127.0.0.1:5000/busybox:2"), "api": service()})
        repo.commit("web on busybox:2")
        swarm.reads.clear()
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.result == "Succeeded", outcome.message
        assert outcome.message.startswith("deployed: web;")
        # the plan's observe (services, configs, secrets), the read right after the deploy
        # (what was applied, and the health wait's first poll), one after the wait
        # (baselines, GC); before: observe + read_applied + poll + baselines + observe
        assert swarm.reads["observe"] == 1
        assert swarm.reads["services"] == 3
        baseline = store.baselines("app", "dev")["web"]
        live = next(s for s in swarm.services("shop") if s.compose_name == "web")
        assert (baseline.version, baseline.spec) == (live.version, live.spec)


def test_a_change_during_the_health_wait_is_still_seen_by_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read after the wait is the baselines' own: a scale made during the wait's
    polls is drift of this sync, not something the baselines took for applied."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo, swarm, store, reconciler = _deployed(tmp_path)
    with store:
        repo.compose({"web": service("127.0.0.1:5000/busybox:2"), "api": service()})
        repo.commit("web on busybox:2")
        swarm.updating_polls = 2
        real_tasks = swarm.tasks

        def tasks_and_scale(ids: Sequence[str]) -> list[TaskState]:
            if swarm.updating_polls == 1:
                swarm.scale("shop_web", 3)
            return real_tasks(ids)

        swarm.tasks = tasks_and_scale  # type: ignore[method-assign]
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.result == "Succeeded", outcome.message
        assert "changed on the swarm during the sync: web (deploy.replicas: 1 -> 3)" in (
            outcome.message
        )


def test_the_health_poll_looks_again_after_50_ms_then_backs_off_to_250() -> None:
    swarm = CountingSwarm()
    swarm.deploy(
        "shop",
        "services:\n  web:\n    image: x\n    deploy: {replicas: 1}\n",
        resolve_image="never",
    )
    swarm.updating_polls = 6  # the deploy's own read sees it updating, too
    first = swarm.services("shop")
    swarm.reads.clear()
    pauses: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    clock = Clock(monotonic=lambda: now[0], sleep=sleep)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    verdict = wait_converged(
        swarm, "shop", ["web"], since=since, timeout=30, clock=clock, first=first
    )
    assert verdict.state == "converged"
    assert pauses == [0.05, 0.1, 0.2, 0.25, 0.25, 0.25]
    # the first poll was the read it was given: one listing fewer than polls
    assert (swarm.reads["services"], swarm.reads["tasks"]) == (6, 7)
