"""What the agent's drift checks read from Docker, and that they still see drift.

A drift check of one app lists the stack's services alone (configs and secrets are no
part of drift). The periodic round over every app lists every stack's services once and
reads an app again only when that listing shows drift: with 100 stacks, one listing per
app cost over 1 s per round on 2 cores (the engine scans all services for each). bench/
measures the round on a real swarm; these pin down the reads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ObjectState, ServiceState
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


@dataclass
class CountingSwarm(FakeSwarm):
    reads: Counter[str] = field(default_factory=Counter)

    def services(self, stack: str) -> list[ServiceState]:
        self.reads["services"] += 1
        return super().services(stack)

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        self.reads["services_by_stack"] += 1
        return super().services_by_stack()

    def objects(self, stack: str) -> list[ObjectState]:
        self.reads["objects"] += 1
        return super().objects(stack)


def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture()
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """Apps ``app`` (stack ``shop``) and ``other`` (``shop-other``) synced to a fake swarm;
    an agent (no Docker events, timers far away) on them, idle, not yet started."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service(), "api": service()})
    repo.write("applications/other.yml", "stack: shop-other\n")
    repo.commit("first")
    swarm = CountingSwarm()
    store = Store(str(tmp_path / "state.db"))
    source = RepoSource.open(str(repo.path))
    reconciler = Reconciler(source, store, lambda _target: swarm)
    for app in ("app", "other"):
        assert reconciler.sync(SyncRequest(app, "dev")).result == "Succeeded"
    settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    try:
        yield Deployed(agent, swarm, store)
    finally:
        store.close()


@dataclass
class Deployed:
    agent: Agent
    swarm: CountingSwarm
    store: Store

    def drifted(self, app: str) -> bool:
        status = self.store.get_status(app, "dev")
        return bool(status and status.drift)

    def started(self) -> Agent:
        assert self.agent.wait_leader(10)
        until(lambda: self.agent.config is not None and self.agent.idle())
        self.swarm.reads.clear()
        return self.agent


def test_a_drift_check_lists_services_only_and_still_sees_a_manual_scale(
    deployed: Deployed,
) -> None:
    swarm, store = deployed.swarm, deployed.store
    with deployed.agent.running():
        agent = deployed.started()
        writes = swarm.writes
        swarm.scale("shop_web", 3)
        agent.enqueue(("drift", "app", "dev"), TriggerRequest("agent"))
        until(lambda: deployed.drifted("app"))
        until(agent.idle)
    assert swarm.reads == Counter({"services": 1})
    assert swarm.writes == writes  # self_heal is off: reported, not reverted
    status = store.get_status("app", "dev")
    assert status is not None and status.sync == "OutOfSync"
    assert "deploy.replicas" in status.message
    assert store.history(app="app", env="dev", limit=5)[0].kind == "drift"


def test_a_drift_round_lists_every_stack_once_and_reads_live_only_what_drifted(
    deployed: Deployed,
) -> None:
    swarm = deployed.swarm
    with deployed.agent.running():
        agent = deployed.started()
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(agent.idle)
        assert swarm.reads == Counter({"services_by_stack": 1})  # nothing drifted

        swarm.reads.clear()
        swarm.scale("shop-other_web", 0)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(lambda: deployed.drifted("other"))
        until(agent.idle)
        assert swarm.reads == Counter({"services_by_stack": 1, "services": 1})
        assert not deployed.drifted("app")

        # An app whose status shows drift is read live, so that a revert is seen.
        swarm.reads.clear()
        swarm.scale("shop-other_web", 1)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(lambda: not deployed.drifted("other"))
        until(agent.idle)
        assert swarm.reads == Counter({"services_by_stack": 1, "services": 1})


def test_a_quiet_drift_round_reads_the_store_once_and_queues_no_check_per_app(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per app a check read its status twice and its baselines once: 3,000 store reads
    and 1,000 tasks for a round over 1,000 apps (bench/ issue 18). The round reads every
    status and baseline once and queues a check only for an app that shows drift."""
    store, swarm = deployed.store, deployed.swarm
    reads: Counter[str] = Counter()
    for name in ("get_status", "baselines", "all_statuses", "all_baselines"):
        original = getattr(store, name)

        def counted(
            *args: object, _name: str = name, _original: object = original, **kw: object
        ) -> object:
            reads[_name] += 1
            return _original(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(store, name, counted)
    checked: list[str] = []
    check = deployed.agent.drift.check

    def counted_check(app: str, env: str, request: TriggerRequest) -> None:
        checked.append(app)
        check(app, env, request)

    monkeypatch.setattr(deployed.agent.drift, "check", counted_check)
    with deployed.agent.running():
        agent = deployed.started()
        # A new agent passed both apps by from what the store says they read (gitpoll.py):
        # no render in memory, so its first round checks each (and keeps its render).
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(agent.idle)
        assert sorted(checked) == ["app", "other"]
        checked.clear()
        reads.clear()
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(agent.idle)
        assert reads == Counter({"all_statuses": 1, "all_baselines": 1})
        assert checked == []

        swarm.scale("shop-other_web", 0)  # still seen, and by a check of that app alone
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(lambda: deployed.drifted("other"))
        until(agent.idle)
        assert checked == ["other"]
        assert not deployed.drifted("app")


def test_the_round_reads_baselines_without_their_specs_and_still_tells_drift(
    deployed: Deployed,
) -> None:
    """The specs were most of the round's store read (JSON of 5,000 services: 0.5 s of
    CPU). Without them, a service whose version is the baseline's has not drifted; one
    whose version moved is checked with its full baseline (its check: the round's listing
    against the stored baseline): drifted if its spec changed, not if only the version
    did."""
    store, swarm = deployed.store, deployed.swarm
    light = store.all_baselines(specs=False)[("app", "dev")]
    full = store.all_baselines()[("app", "dev")]
    assert set(light) == set(full) == {"web", "api"}
    assert light["web"].spec == {} and light["web"].rendered == {}
    assert full["web"].spec and light["web"].version == full["web"].version
    with deployed.agent.running():
        agent = deployed.started()
        swarm.scale("shop_web", 1)  # written with the same spec (1 replica): not drift
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(agent.idle)
        assert not deployed.drifted("app")
        swarm.scale("shop_web", 4)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(lambda: deployed.drifted("app"))
        until(agent.idle)


def test_the_rounds_listing_is_kept_only_for_the_checks_it_queued(deployed: Deployed) -> None:
    """The round's listing of every service (5,000 with their specs at 1,000 apps: ~60
    MB) stayed in memory until the next round, and the next one's read doubled it (agent
    RSS 321 MB; bench/ issue 18). It is freed before the next read, and what is kept is
    the stacks of the apps whose checks it queued; a check still sees its drift."""
    swarm = deployed.swarm
    with deployed.agent.running():
        agent = deployed.started()
        agent.enqueue(("drift-all",), TriggerRequest("agent"))  # the renders, as a new agent
        until(agent.idle)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))  # a quiet round
        until(agent.idle)
        [target] = {r.env.target for _, _, r in agent.state.renders()}
        assert agent.state.listing(target) in (None, {})

        swarm.scale("shop-other_web", 0)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        until(lambda: deployed.drifted("other"))
        until(agent.idle)
        kept = agent.state.listing(target)
        assert kept is not None and sorted(kept) == ["shop-other"]
        assert not deployed.drifted("app")
        # the round's listing carries no PreviousSpec (only a deploy's read needs it)
        assert all(s.previous_spec is None for s in kept["shop-other"])
