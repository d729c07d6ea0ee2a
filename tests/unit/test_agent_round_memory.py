"""What the agent keeps in memory between drift rounds at 1,000 apps (issue 18): the
round's listing without ``PreviousSpec``, decoded with the cyclic GC paused, and each
deployed render without the source positions only its validation read. The figures:
bench/profile_round.py (in process) and bench/noop.py (a real swarm)."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.stack import LABEL_STACK
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.listing import services_by_stack
from gitswarm.swarm.port import gc_paused, service_state
from tests.gitops import GitOpsRepo, service


def _raw(stack: str, name: str) -> dict[str, Any]:
    spec = {"Name": f"{stack}_{name}", "Labels": {LABEL_STACK: stack}, "Mode": {}}
    return {"ID": name, "Version": {"Index": 7}, "Spec": spec, "PreviousSpec": dict(spec)}


def test_the_rounds_listing_leaves_previous_spec_out_a_stack_listing_keeps_it() -> None:
    raw = [_raw("a", "web"), _raw("a", "api"), _raw("b", "web")]
    listed = services_by_stack(json.dumps(raw).encode())
    assert {k: [s.name for s in v] for k, v in listed.items()} == {
        "a": ["a_web", "a_api"],
        "b": ["b_web"],
    }
    assert all(s.previous_spec is None for v in listed.values() for s in v)
    assert service_state(_raw("a", "web")).previous_spec is not None  # read_applied's


def test_the_gc_pause_restores_the_collector_and_leaves_a_disabled_one_disabled() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("the engine went away mid-listing")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # someone else's pause is not ended by this one
    finally:
        gc.enable()


def test_a_kept_render_has_no_source_positions_and_still_serves_the_drift_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half of a cached render's memory was the position of every node of its compose
    document (30 MB at 1,000 apps), read only while the render is validated."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    head = repo.commit("first")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm)
        settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
        agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.rendered is not None and outcome.rendered.desired.source_map.locations
        agent.drift.after_sync(outcome)
        kept = agent.state.render_of("app", "dev", head)
        assert kept is not None and kept.desired.source_map.locations == {}
        assert kept.desired.compose == outcome.rendered.desired.compose
        swarm.scale("shop_web", 2)
        agent.drift.check("app", "dev", TriggerRequest("agent", reason="a test's check"))
        status = store.get_status("app", "dev")
        assert status is not None and list(status.drift) == ["web"]


def test_the_drift_round_runs_with_the_gc_paused_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its listing, statuses and baselines are made and freed within the round; the
    collections they triggered each traversed the whole heap (round CPU 19x for 10x the
    apps at 1,000; bench/ issue 18)."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.compose({"web": service()})
    repo.commit("first")
    seen: list[bool] = []

    class Watching(FakeSwarm):
        def services_by_stack(self) -> dict[str, list[Any]]:
            seen.append(gc.isenabled())
            return super().services_by_stack()

    swarm = Watching()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm)
        settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
        agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
        agent.state.set_leader(True)
        agent.enqueue(("git",), TriggerRequest("poll"))
        agent.run_pending()
        swarm.scale("shop_web", 2)
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        agent.run_pending()
        assert seen == [False]
        assert gc.isenabled()
        status = store.get_status("app", "dev")
        assert status is not None and list(status.drift) == ["web"]  # still seen
