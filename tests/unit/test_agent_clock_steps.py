"""The agent's timers under a step of the wall clock (issue 18, faults): what waits for
a wall-clock moment — a sync held for a closed deployment window — waits on the
monotonic clock, and looks at the wall clock again at least every WINDOW_RECHECK
seconds, so a step forward (or back) is seen within that, not when the delay computed
before the step runs out. On the fake swarm with a real Git repository; the real-swarm
counterpart is tests/integration/test_faults_agent.py (clock jumps)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.agent.syncs import WINDOW_RECHECK
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

SATURDAY = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)  # the window opens Monday 09:00


@dataclass
class Clocks:
    wall: dt.datetime = SATURDAY
    mono: float = 1000.0

    def now(self) -> dt.datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def test_a_sync_held_for_the_window_sees_a_forward_step_of_the_clock_within_a_recheck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "win")
    repo.write_settings(
        policies={"deployment_windows": {"mode": "enforce", "timezone": "UTC",
                                         "allow": ["Mon-Fri 09:00-17:00"]}}
    )  # fmt: skip
    repo.compose({"web": service()})
    head = repo.commit("v1")
    clocks = Clocks()
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db"), clock=clocks.now) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(
            source, store, lambda _t: swarm, clock=Clock(now=clocks.now, monotonic=clocks.monotonic)
        )
        agent = Agent(
            source=source, store=store, reconciler=reconciler,
            settings=AgentSettings(events=False, poll_interval=3600, drift_interval=3600),
            monotonic=clocks.monotonic,
        )  # fmt: skip
        agent.enqueue(("git",), TriggerRequest("poll"))
        agent.run_pending()
        status = store.get_status("app", "dev")
        assert status is not None and status.reason == "DeploymentWindowClosed", status
        assert swarm.writes == 0
        records = len(store.history(app="app", env="dev"))
        for _ in range(3):  # the timer looks again every minute: nothing rendered, recorded
            clocks.mono += 60
            agent.run_pending()
        assert len(store.history(app="app", env="dev")) == records
        # The host's clock was two days behind: NTP steps it to Monday 10:00.
        clocks.wall = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
        clocks.mono += 60  # a minute later
        agent.run_pending()
        assert len(store.history(app="app", env="dev")) == records + 1
        status = store.get_status("app", "dev")
        assert status is not None and (status.revision, status.sync) == (head, "Synced"), status
        assert swarm.writes > 0


def test_the_recheck_is_a_minute_at_most() -> None:
    assert 0 < WINDOW_RECHECK <= 60
