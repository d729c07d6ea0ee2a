"""The agent's stop (SIGTERM) while an operation runs: the operation's wait for
convergence ends at once, its worker thread ends, its lock is free, and nothing is
recorded for it: the operation stays Running for the next agent to mark Interrupted, as
after a kill -9. Before, the wait ran on (up to health_timeout, 300 s) in a pool thread
that the interpreter joins at exit: in the agent's own container, whose service was
being removed or upgraded, it never converged and every stop ended in Swarm's SIGKILL
(tests/integration/test_agent_image.py checks the container's exit)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import TaskState
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.apply import Clock, Stopping, stopping_clock, wait_converged
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store, sync_lock
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


class NeverConverges(FakeSwarm):
    """Services deployed, no task ever starts (as the agent's own service while Swarm
    removes it): a convergence wait runs to its timeout -- until ``release``."""

    release = False

    def tasks(self, service_ids: Sequence[str]) -> list[TaskState]:
        return super().tasks(service_ids) if self.release else []


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gitswarm-work")]


def _source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RepoSource:
    """A repository of one app with one service, one commit."""
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "stops")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    repo.commit("first")
    return RepoSource.open(str(repo.path))


@pytest.fixture()
def rig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Agent, Store, NeverConverges]]:
    source = _source(tmp_path, monkeypatch)
    swarm = NeverConverges()
    store = Store(str(tmp_path / "state.db"))
    reconciler = Reconciler(source, store, lambda _t: swarm)
    settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    try:
        yield agent, store, swarm
    finally:
        swarm.release = True  # a wait the old code left running ends with the test
        agent.stop(timeout=5)
        store.close()


def test_a_stop_ends_the_running_operations_wait_and_leaves_it_for_the_next_agent(
    rig: tuple[Agent, Store, NeverConverges],
) -> None:
    agent, store, _swarm = rig
    agent.start()
    assert agent.wait_leader(10)
    agent.enqueue(("git",), TriggerRequest("poll"))

    def running() -> bool:
        return any(o.result == "Running" for o in store.history(app="app", env="dev", limit=10))

    _until(running)  # deployed, waiting for tasks that never start
    (op,) = store.history(app="app", env="dev", limit=10)

    agent.stop(timeout=2.0)  # less than the grace the old wait needed (300 s)

    _until(lambda: not _workers(), timeout=5.0)  # no thread left for the exit to join
    (after,) = store.history(app="app", env="dev", limit=10)
    assert (after.id, after.result, after.reason) == (op.id, "Running", None)
    assert store.lock_holder(sync_lock("app", "dev")) is None  # a successor syncs at once
    # The successor (another holder, this agent's lease released) marks it Interrupted.
    assert store.mark_interrupted(app="app", env="dev") == [op.id]
    (marked,) = store.history(app="app", env="dev", limit=10)
    assert marked.result == "Interrupted"


def test_a_stopping_clock_raises_in_a_wait_and_at_a_checkpoint() -> None:
    stop = threading.Event()
    clock = stopping_clock(stop)
    clock.checkpoint()  # not stopping: nothing happens
    threading.Timer(0.2, stop.set).start()
    swarm = NeverConverges()
    since = Clock().now()
    with pytest.raises(Stopping):
        wait_converged(swarm, "s", ["web"], since=since, timeout=300, clock=clock)
    with pytest.raises(Stopping):
        clock.checkpoint()


def test_a_stopping_clock_keeps_an_injected_sleep() -> None:
    slept: list[float] = []
    stop = threading.Event()
    clock = stopping_clock(stop, Clock(sleep=slept.append))
    clock.sleep(5.0)
    assert slept == [5.0]
    stop.set()
    with pytest.raises(Stopping):
        clock.sleep(5.0)
    assert slept == [5.0]


def test_serve_exits_though_a_thread_is_still_stuck_after_the_grace() -> None:
    """What the interpreter would join without limit (a non-daemon thread in a command
    that never ends) does not keep ``gitswarm serve`` alive: it exits with its code and
    says which thread it left."""
    program = (
        "import threading\n"
        "from gitswarm.cli.serve import leave\n"
        "threading.Thread(target=threading.Event().wait, name='gitswarm-work_0').start()\n"
        "leave(0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "exiting with work still running after the shutdown grace: gitswarm-work_0" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_a_sync_run_while_its_caller_handles_a_stop_still_records_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a Stopping raised by the sync itself leaves its operation unrecorded, not one
    its caller is handling (the check once read ``sys.exc_info()`` in ``finally``)."""
    from gitswarm.reconcile.outcome import SyncRequest

    source = _source(tmp_path, monkeypatch)
    swarm = FakeSwarm()
    store = Store(str(tmp_path / "state.db"))
    try:
        reconciler = Reconciler(source, store, lambda _t: swarm)
        try:
            raise Stopping("the caller's")
        except Stopping:
            outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.result == "Succeeded", outcome
        (op,) = store.history(app="app", env="dev", limit=5)
        assert op.result == "Succeeded"
        status = store.get_status("app", "dev")
        assert status is not None and status.revision == outcome.revision
    finally:
        store.close()
