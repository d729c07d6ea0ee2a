"""The store refuses a write (another writer holds the SQLite file past the busy timeout;
a full disk answers the same way): the Recorder loses no record. It says so loudly, keeps
the record in order (reconcile/journal.py), /readyz and /metrics show it, and the agent
writes it by itself once the store takes writes again. On the real store file, locked
by a second connection as a backup tool or a stuck CLI would; the same fault against a
running agent and the real swarm: tests/integration/test_faults_agent.py."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ObjectState
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.journal import Journal
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LockAfterDeploy(FakeSwarm):
    """Takes the store's write lock (from another connection) once the deploy is done:
    at the garbage collection's read, the sync's last step before it records."""

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db
        self.armed = False
        self.locker: sqlite3.Connection | None = None
        self._observes = 0

    def objects(self, stack: str) -> list[ObjectState]:
        if self.armed:
            self._observes += 1
            # 1: the plan's observe, 2: the GC's read of configs and secrets (after the
            # deploy; its services are the stack as read after the wait)
            if self._observes == 2:
                self.lock()
        return super().objects(stack)

    def lock(self) -> None:
        self.locker = sqlite3.connect(self.db, isolation_level=None, timeout=1)
        self.locker.execute("BEGIN EXCLUSIVE")

    def unlock(self) -> None:
        assert self.locker is not None
        self.locker.rollback()
        self.locker.close()
        self.locker = None


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitOpsRepo:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "locked")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    repo.commit("first")
    return repo


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "state.db"), busy_timeout=0.2) as store:
        yield store


def test_a_record_the_store_refuses_after_the_deploy_is_kept_and_written_later(
    repo: GitOpsRepo, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    swarm = LockAfterDeploy(tmp_path / "state.db")
    ticks = Ticks()
    reconciler = Reconciler(
        RepoSource.open(str(repo.path)), store, lambda _t: swarm, journal=Journal(ticks)
    )
    first = reconciler.sync(SyncRequest("app", "dev"))
    repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
    second = repo.commit("second")
    swarm.armed = True
    with caplog.at_level(logging.ERROR, logger="gitswarm.store"):
        outcome = reconciler.sync(SyncRequest("app", "dev"))
    assert outcome.result == "Succeeded" and outcome.revision == second  # it did deploy
    backlog = reconciler.journal.backlog()
    # the operation's end and the status after it: one record, one transaction
    assert backlog is not None and backlog.count == 1
    assert "database is locked" in backlog.error
    assert f"the end of operation {outcome.operation_id} (sync of app/dev at {second[:12]}" in (
        backlog.oldest
    )
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("state store refused a write" in m and "not written" in m for m in said), said
    status = store.get_status("app", "dev")
    assert status is not None and status.revision == first.revision  # not written yet

    assert reconciler.journal.flush() == 1  # still locked: it waits, nothing dropped
    swarm.unlock()
    assert not reconciler.journal.due()  # the backoff runs ...
    ticks.now += 31
    assert reconciler.journal.due()  # ... and no longer than 30 s
    assert reconciler.journal.flush() == 0
    status = store.get_status("app", "dev")
    assert status is not None and (status.revision, status.last_result, status.health) == (
        second, "Succeeded", "Healthy",
    )  # fmt: skip
    [op, _] = store.history(app="app", env="dev")
    assert (op.id, op.result) == (outcome.operation_id, "Succeeded")  # not Running
    assert reconciler.journal.backlog() is None


def test_a_command_whose_record_the_store_never_takes_does_not_report_success(
    repo: GitOpsRepo, store: Store, tmp_path: Path
) -> None:
    """The CLI's process ends with the command: `gitswarm sync` settles its journal and
    fails (exit 1, StoreError) rather than exit 0 with its record lost."""
    from gitswarm.errors import StoreError

    swarm = LockAfterDeploy(tmp_path / "state.db")
    reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
    reconciler.sync(SyncRequest("app", "dev"))
    reconciler.journal.settle()  # all written: nothing to say
    repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
    repo.commit("second")
    swarm.armed = True
    assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
    with pytest.raises(StoreError, match=r"did not take 1 record\(s\)") as caught:
        reconciler.journal.settle()
    assert caught.value.exit_code == 1 and "database is locked" in caught.value.message
    swarm.unlock()
    reconciler.journal.settle()  # the store takes them again: written, nothing raised
    assert reconciler.journal.backlog() is None


def test_records_land_in_the_order_they_happened(
    repo: GitOpsRepo, store: Store, tmp_path: Path
) -> None:
    """A failure's status refused, then a success: the success is the status in the end,
    though the store took both at once."""
    swarm = LockAfterDeploy(tmp_path / "state.db")
    reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
    recorder = reconciler.recorder
    swarm.lock()
    recorder.drift_detected("app", "dev", "a" * 40, {"web": {"replicas": [1, 3]}}, "web scaled")
    swarm.unlock()
    recorder.drift_cleared("app", "dev")  # newer: must win, and the older one goes first
    status = store.get_status("app", "dev")
    assert status is not None and (status.sync, status.drift) == ("Synced", {})
    resolved, drift = store.history(app="app", env="dev")  # newest first
    assert (drift.reason, resolved.reason) == ("Drift", "DriftResolved")
    assert reconciler.journal.backlog() is None


def test_the_agent_says_so_and_writes_the_records_by_itself(
    repo: GitOpsRepo, store: Store, tmp_path: Path
) -> None:
    swarm = LockAfterDeploy(tmp_path / "state.db")
    ticks, metrics = Ticks(), Metrics()
    source = RepoSource.open(str(repo.path))
    reconciler = Reconciler(source, store, lambda _t: swarm, journal=Journal(ticks))
    agent = Agent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=AgentSettings(events=False, poll_interval=300, drift_interval=300),
        metrics=metrics,
        monotonic=ticks,
    )
    swarm.armed = True
    agent.enqueue(("git",), TriggerRequest("poll"))
    agent.run_pending()  # syncs the first commit; its records are refused
    ready = agent.readiness()
    assert not ready.ready and not ready.checks["store"]["ok"]
    assert "1 record(s) not written yet" in ready.checks["store"]["detail"]
    sample = metrics.registry.get_sample_value
    assert sample("gitswarm_store_unwritten_records", {}) == 1
    failures = sample("gitswarm_store_write_failures_total", {})
    assert failures is not None and failures >= 1
    assert "gitswarm_store_write_failures_total" in generate_latest(metrics.registry).decode()
    swarm.unlock()
    ticks.now += 31
    agent.run_pending()  # the ("record",) task: nobody asked, nothing else to do
    assert agent.readiness().checks["store"]["ok"]
    assert sample("gitswarm_store_unwritten_records", {}) == 0
    status = store.get_status("app", "dev")
    assert status is not None and status.health == "Healthy" and status.revision == agent.head
