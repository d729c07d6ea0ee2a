"""The agent's failure paths on the fake swarm, in seconds: a deploy that fails health,
the automatic rollback, retries with backoff, the heal-loop guard, losing the lease, and
drift seen through Docker events. The same behaviours run against a real swarm in
tests/integration/test_agent_rollback.py, test_agent_drift.py, test_agent_resilience.py;
here each runs on the loop's own thread (``run_pending``) with a monotonic clock the test
moves, so no test waits for a timer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitswarm.errors import Reason
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.events import Event
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import AGENT_LOCK, Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

GOOD = "127.0.0.1:5000/busybox:1"
BROKEN = "127.0.0.1:5000/busybox:broken"


class Ticks:
    """A monotonic clock that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sent(Notifier):
    """Records what would be sent (Apprise is never reached)."""

    def __init__(self) -> None:
        super().__init__({})
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@dataclass
class Rig:
    repo: GitOpsRepo
    swarm: FakeSwarm
    store: Store
    agent: Agent
    sent: Sent
    ticks: Ticks
    metrics: Metrics

    def poll(self) -> None:
        self.agent.enqueue(("git",), TriggerRequest("poll"))
        self.agent.run_pending()

    def status(self) -> object:
        status = self.store.get_status("app", "dev")
        assert status is not None
        return status

    def ops(self, kind: str | None = None) -> list[object]:
        ops = self.store.history(app="app", env="dev", limit=100)
        return [o for o in ops if kind is None or o.kind == kind]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture()
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    stores: list[Store] = []

    def build(sync: dict[str, object] | None = None, **settings: object) -> Rig:
        repo = GitOpsRepo(tmp_path / "repo", "fails", sync={"prune": True, **(sync or {})})
        repo.compose({"web": service(GOOD)})
        repo.commit("good")
        swarm = FakeSwarm(failing_images={BROKEN})
        store = Store(str(tmp_path / "state.db"))
        stores.append(store)
        source = RepoSource.open(str(repo.path))
        sent, ticks, metrics = Sent(), Ticks(), Metrics()
        reconciler = Reconciler(source, store, lambda _t: swarm, notifier=sent)
        defaults: dict[str, object] = {"events": False, "poll_interval": 300, "drift_interval": 300}
        agent = Agent(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=AgentSettings(**{**defaults, **settings}),  # type: ignore[arg-type]
            metrics=metrics,
            monotonic=ticks,
        )
        return Rig(repo, swarm, store, agent, sent, ticks, metrics)

    yield build
    for store in stores:
        store.close()


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# --- a deploy that fails health -----------------------------------------------------------


def test_a_failed_health_check_degrades_the_app_alerts_once_and_is_not_retried(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.poll()
    assert rig.status().health == "Healthy"  # type: ignore[attr-defined]
    rig.repo.compose({"web": service(BROKEN)})
    bad = rig.repo.commit("bad")
    rig.poll()
    status = rig.status()
    assert (status.sync, status.health, status.last_result) == (  # type: ignore[attr-defined]
        "OutOfSync", "Degraded", "Failed",
    )  # fmt: skip
    assert status.reason == Reason.TASKS_FAILING  # type: ignore[attr-defined]
    for _ in range(3):  # the same head again: nothing tried, nothing sent
        rig.poll()
    failed = [o for o in rig.ops("sync") if o.result == "Failed"]  # type: ignore[attr-defined]
    assert [o.revision for o in failed] == [bad]  # type: ignore[attr-defined]
    assert rig.sent.kinds().count("sync_failed") == 1
    assert rig.agent.state.queue.timers == []  # a deploy failure is not retried
    assert rig.metric(
        "gitswarm_sync_operations_total", app="app", env="dev", result="Failed",
        reason="TasksFailing",
    ) == 1  # fmt: skip
    assert rig.metric("gitswarm_app_health_state", app="app", env="dev", state="Degraded") == 1
    # It deployed something, so its duration was observed (the good sync and the bad one).
    assert rig.metric("gitswarm_sync_duration_seconds_count", app="app", env="dev") == 2


# --- the automatic rollback ----------------------------------------------------------------


def test_a_failed_deploy_is_rolled_back_marked_bad_and_alerted_once(
    make: Callable[..., Rig],
) -> None:
    rig = make(sync={"auto_rollback": True})
    rig.poll()
    good = rig.status().revision  # type: ignore[attr-defined]
    rig.repo.compose({"web": service(BROKEN)})
    bad = rig.repo.commit("bad")
    rig.poll()

    status = rig.status()
    assert status.revision == good and status.last_result == "RolledBack"  # type: ignore[attr-defined]
    assert (status.sync, status.health) == ("OutOfSync", "Healthy")  # type: ignore[attr-defined]
    assert status.reason == "TasksFailing"  # type: ignore[attr-defined]
    assert status.message.startswith(f"{bad[:12]} failed (TasksFailing: ")  # type: ignore[attr-defined]
    assert status.message.endswith(  # type: ignore[attr-defined]
        f"rolled back to {good[:12]}; {bad[:12]} will not be applied again until Git moves on"
    )
    assert rig.store.is_bad("app", "dev", bad)
    [rollback] = rig.ops("rollback")
    assert rollback.result == "Succeeded" and rollback.revision == good  # type: ignore[attr-defined]
    running = [t.image for t in rig.swarm.tasks([s.id for s in rig.swarm.services("fails")])]
    assert running[-1] == GOOD

    # Asked again (an API trigger) with Git unchanged: skipped, never re-applied.
    rig.agent.trigger(TriggerRequest("api", app="app", env="dev"))
    rig.agent.run_pending()
    assert rig.ops("sync")[0].reason == "RevisionMarkedBad"  # type: ignore[attr-defined]
    assert len([o for o in rig.ops("sync") if o.revision == bad]) == 2  # type: ignore[attr-defined]
    assert rig.sent.kinds().count("sync_failed") == 1
    assert rig.sent.kinds().count("rollback") == 1
    [alert] = [e for e in rig.sent.events if e.kind == "rollback"]
    assert alert.revision == bad and alert.reason == Reason.TASKS_FAILING
    assert rig.metric("gitswarm_rollbacks_total", app="app", env="dev", result="Succeeded") == 1


def test_without_a_healthy_revision_the_bad_one_is_marked_and_left_failed(
    make: Callable[..., Rig],
) -> None:
    rig = make(sync={"auto_rollback": True})
    rig.repo.compose({"web": service(BROKEN)})
    bad = rig.repo.commit("bad from the start")
    rig.poll()
    assert rig.store.is_bad("app", "dev", bad)
    assert rig.ops("rollback") == []
    assert rig.status().last_result == "Failed"  # type: ignore[attr-defined]


# --- retry with backoff --------------------------------------------------------------------


def test_an_unreachable_engine_is_retried_with_doubling_delays_until_it_answers(
    make: Callable[..., Rig],
) -> None:
    rig = make()
    rig.swarm.down = True
    rig.poll()
    queue = rig.agent.state.queue
    delays = []
    for _ in range(4):
        [timer] = queue.timers
        delays.append(timer.due - rig.ticks.now)
        rig.ticks.now = timer.due
        rig.agent.run_pending()
    assert delays == [2.0, 4.0, 8.0, 16.0]
    assert [o.reason for o in rig.ops("sync")] == ["SwarmFailed"] * 5  # type: ignore[attr-defined]
    rig.swarm.down = False
    [timer] = queue.timers
    rig.ticks.now = timer.due
    rig.agent.run_pending()
    assert rig.status().last_result == "Succeeded"  # type: ignore[attr-defined]
    assert queue.timers == [] and queue.retries == {}


def test_a_new_commit_meanwhile_replaces_the_pending_retry(make: Callable[..., Rig]) -> None:
    rig = make()
    rig.swarm.down = True
    rig.poll()
    rig.swarm.down = False
    rig.repo.compose({"web": service(GOOD, environment={"V": "2"})})
    second = rig.repo.commit("second")
    rig.poll()  # not waiting for the retry: the new head is synced at once
    assert rig.status().revision == second  # type: ignore[attr-defined]


# --- the heal-loop guard -------------------------------------------------------------------


def test_drift_that_keeps_coming_back_is_healed_three_times_then_self_heal_pauses(
    make: Callable[..., Rig],
) -> None:
    rig = make(sync={"self_heal": True}, heal_limit=3, heal_window=600)
    rig.poll()
    drift = ("drift", "app", "dev")
    for replicas in (2, 3, 4):
        rig.swarm.scale("fails_web", replicas)
        rig.agent.run_task(drift, TriggerRequest("agent"))
        assert rig.swarm.services("fails")[0].replicas == 1  # healed
        rig.ticks.now += 10
    rig.swarm.scale("fails_web", 5)
    rig.agent.run_task(drift, TriggerRequest("agent"))
    assert rig.swarm.services("fails")[0].replicas == 5  # not healed: the guard holds
    status = rig.status()
    assert status.reason == "HealLoop" and status.sync == "OutOfSync"  # type: ignore[attr-defined]
    assert status.message.startswith("drift keeps coming back (3 heals within 600s)")  # type: ignore[attr-defined]
    rig.agent.run_task(drift, TriggerRequest("agent"))  # still there: alerted once only
    heal_loops = [e for e in rig.sent.events if e.reason == Reason.HEAL_LOOP]
    assert len(heal_loops) == 1
    assert len(rig.ops("heal")) == 3
    assert rig.metric("gitswarm_drift_events_total", app="app", env="dev", action="healed") == 3
    assert rig.sent.kinds().count("drift_healed") == 3

    rig.ticks.now += 600  # the window has passed: healing resumes
    rig.agent.run_task(drift, TriggerRequest("agent"))
    assert rig.swarm.services("fails")[0].replicas == 1
    status = rig.status()
    assert status.sync == "Synced" and not status.drift  # type: ignore[attr-defined]


# --- the lease -----------------------------------------------------------------------------


def test_a_standby_does_nothing_and_an_agent_that_loses_the_lease_stops_acting(
    make: Callable[..., Rig],
) -> None:
    rig = make(lease_ttl=60)
    assert rig.store.acquire_lock(AGENT_LOCK, "other-agent", 60)
    with rig.agent.running():
        _until(lambda: rig.agent.store.lock_holder(AGENT_LOCK) is not None)
        rig.agent.leadership.step()  # the lease is held elsewhere: standby
        rig.agent.enqueue(("git",), TriggerRequest("poll"))
        time.sleep(0.02)  # a dispatcher that acted would have by now
        assert not rig.agent.leader and rig.ops() == [] and not rig.agent.idle()
        assert rig.agent.readiness().checks["leader"]["detail"] == "standby (leader: other-agent)"

        rig.store.release_lock(AGENT_LOCK, "other-agent")  # the other one is gone
        rig.agent.leadership.step()
        assert rig.agent.leader
        assert rig.agent.wait_idle(10)
        assert rig.status().last_result == "Succeeded"  # type: ignore[attr-defined]

        # Someone else holds the lease now (ours ran out while the store was away).
        rig.store.release_lock(AGENT_LOCK, rig.agent.holder)
        assert rig.store.acquire_lock(AGENT_LOCK, "other-agent", 60)
        rig.agent.leadership.step()
        assert not rig.agent.leader
        assert rig.metric("gitswarm_agent_leader") == 0
        rig.repo.compose({"web": service(GOOD, environment={"V": "2"})})
        rig.repo.commit("while on standby")
        rig.agent.enqueue(("git",), TriggerRequest("poll"))
        time.sleep(0.02)  # a dispatcher that acted would have by now
        assert len(rig.ops()) == 1  # nothing more was done
    assert rig.store.lock_holder(AGENT_LOCK).holder == "other-agent"  # type: ignore[union-attr]


# --- drift through Docker events -------------------------------------------------------------


def test_a_manual_scale_is_seen_through_the_event_stream_and_reported(
    make: Callable[..., Rig],
) -> None:
    rig = make(events=True, lease_ttl=60)
    rig.poll()
    with rig.agent.running():
        assert rig.agent.wait_leader(10)
        _until(lambda: rig.swarm.subscribers() == 1)
        assert rig.agent.wait_idle(10)
        rig.swarm.scale("fails_web", 3)  # the engine sends "service update"
        _until(lambda: "drift_detected" in rig.sent.kinds())
        assert rig.agent.wait_idle(10)
        status = rig.status()
        assert status.sync == "OutOfSync"  # type: ignore[attr-defined]
        assert "deploy.replicas: 1 -> 3" in status.message  # type: ignore[attr-defined]
        assert rig.sent.kinds().count("drift_detected") == 1

        # The stream breaks (an engine restart): the watcher reconnects and first checks
        # everything, since events may have been missed meanwhile.
        rig.swarm.break_events()
        _until(lambda: rig.swarm.subscribers() == 1)
        rig.swarm.remove("fails_web")
        _until(lambda: rig.sent.kinds().count("drift_detected") == 2)
        assert "service removed" in rig.status().message  # type: ignore[attr-defined]
    assert rig.swarm.subscribers() == 0  # stop closed the stream
