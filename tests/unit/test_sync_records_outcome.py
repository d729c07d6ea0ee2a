"""The Reconciler records every outcome itself, in one place (reconcile/record.py): a
policy violation as a ``policy-violation`` operation, a deployment window hold with the
time it opens, an emergency rollback as RolledBack, and the sync's duration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from gitswarm.errors import Reason
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.rollback import RollbackRequest, rollback
from gitswarm.reconcile.sync import Reconciler, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

SATURDAY = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))


def test_a_policy_violation_is_recorded_as_such_before_any_operation_starts(
    tmp_path: Path,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "pv")
    repo.write_settings(policies={"default": "off", "no_root_containers": "enforce"})
    repo.compose({"web": service(user="root")})
    bad = repo.commit("run as root")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert outcome.reason is Reason.POLICY_VIOLATION and outcome.plan is None
        [op] = store.history(app="app", env="dev")
        assert (op.kind, op.result, op.reason, op.revision) == (
            "policy-violation",
            "Failed",
            "PolicyViolation",
            bad,
        )
        assert op.author == "Test Author" and op.id == outcome.operation_id
        status = store.get_status("app", "dev")
        assert status is not None and status.reason == "PolicyViolation"
        assert swarm.writes == 0


def test_a_closed_window_says_when_it_opens_and_the_agent_s_status_says_it_waits(
    tmp_path: Path,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "win")
    repo.write_settings(
        policies={
            "deployment_windows": {
                "mode": "enforce",
                "timezone": "UTC",
                "allow": ["Mon-Fri 09:00-17:00"],
            }
        }
    )
    repo.compose({"web": service()})
    repo.commit("v1")
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(
            RepoSource.open(str(repo.path)),
            store,
            lambda _t: FakeSwarm(),
            clock=Clock(now=lambda: SATURDAY),
        )
        monday = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
        cli = reconciler.sync(SyncRequest("app", "dev"))
        assert cli.reason is Reason.DEPLOYMENT_WINDOW_CLOSED and cli.retry_at == monday
        status = store.get_status("app", "dev")
        assert status is not None and status.message.startswith("deployment window closed")
        held = reconciler.sync(SyncRequest("app", "dev", trigger="agent", hold_for_window=True))
        assert held.retry_at == monday
        status = store.get_status("app", "dev")
        assert status is not None
        assert status.message == f"waiting for the deployment window: opens {monday.isoformat()}"
        assert status.reason == "DeploymentWindowClosed"


def test_an_emergency_rollback_is_recorded_rolled_back_and_its_duration_observed(
    tmp_path: Path,
) -> None:
    repo = GitOpsRepo(tmp_path / "repo", "rb")
    repo.compose({"web": service()})
    good = repo.commit("good")
    swarm = FakeSwarm()
    metrics = Metrics()
    with Store(str(tmp_path / "state.db")) as store:
        reconciler = Reconciler(
            RepoSource.open(str(repo.path)), store, lambda _t: swarm, metrics=metrics
        )
        assert reconciler.sync(SyncRequest("app", "dev")).ok
        repo.compose({"web": service(environment={"V": "2"})})
        head = repo.commit("newer")
        assert reconciler.sync(SyncRequest("app", "dev")).ok
        outcome = rollback(
            reconciler, RollbackRequest("app", "dev", to=good, push=False, reason="pager")
        )
        assert outcome.ok and outcome.revision == good
        status = store.get_status("app", "dev")
        assert status is not None
        assert (status.last_result, status.sync, status.revision) == (
            "RolledBack",
            "OutOfSync",
            good,
        )
        assert status.reason == "RolledBack"
        assert status.message == (
            f"{head[:12]} rolled back by hand (pager); rolled back to {good[:12]}; "
            f"{head[:12]} will not be applied again until Git moves on"
        )
        assert store.is_bad("app", "dev", head)
        count = metrics.registry.get_sample_value(
            "gitswarm_sync_duration_seconds_count", {"app": "app", "env": "dev"}
        )
        assert count == 3
        rolled = metrics.registry.get_sample_value(
            "gitswarm_rollbacks_total", {"app": "app", "env": "dev", "result": "Succeeded"}
        )
        assert rolled == 1


def test_whoever_sees_an_operation_finished_sees_the_status_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI, tests/integration/test_faults_nodes.py: a client polling history saw the sync
    Failed and read the status of before it (Healthy), since the operation's end and the
    status after it were two transactions. They are one: a reader (another connection,
    as the CLI, the API or a second agent) sees both or neither."""
    repo = GitOpsRepo(tmp_path / "repo", "atomic")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    repo.commit("v1")
    swarm = FakeSwarm(failing_images={"127.0.0.1:5000/busybox:2"})
    path = str(tmp_path / "state.db")
    with Store(path) as store, Store(path) as reader:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: swarm)
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
        repo.commit("v2: its tasks fail")
        seen: list[tuple[str, str | None, str]] = []
        set_status = store.set_status

        def watched(app: str, env: str, **fields: Any) -> Any:
            op = reader.history(app="app", env="dev")[0]  # newest first
            status = reader.get_status("app", "dev")
            assert status is not None
            seen.append((op.result, status.last_result, status.health))
            return set_status(app, env, **fields)

        monkeypatch.setattr(store, "set_status", watched)
        outcome = reconciler.sync(SyncRequest("app", "dev"))
        assert (outcome.result, outcome.reason) == ("Failed", Reason.TASKS_FAILING)
        # As the status is written, the operation is not yet finished for anyone else
        assert seen == [("Running", "Succeeded", "Healthy")], seen
        [op, _] = reader.history(app="app", env="dev")
        status = reader.get_status("app", "dev")
        assert status is not None
        assert (op.result, status.last_result, status.health) == ("Failed", "Failed", "Degraded")


def test_whoever_sees_a_drift_record_sees_the_status_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drift's status (OutOfSync, the fields) and its operation in history are one
    transaction, as an operation's end and its status: a reader polling the status saw
    OutOfSync with no drift in history yet (and a store refusing the second write
    left the status without its record), and so for the drift's end."""
    repo = GitOpsRepo(tmp_path / "repo", "drift")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    sha = repo.commit("v1")
    path = str(tmp_path / "state.db")
    with Store(path) as store, Store(path) as reader:
        reconciler = Reconciler(RepoSource.open(str(repo.path)), store, lambda _t: FakeSwarm())
        assert reconciler.sync(SyncRequest("app", "dev")).result == "Succeeded"
        seen: list[tuple[str, int]] = []
        record = store.record_operation

        def watched(*args: Any, **kwargs: Any) -> Any:
            status = reader.get_status("app", "dev")
            assert status is not None
            seen.append((status.sync, len(reader.history(app="app", env="dev"))))
            return record(*args, **kwargs)

        monkeypatch.setattr(store, "record_operation", watched)
        details = {"web": {"service": "web", "drift": [{"field": "deploy.replicas"}]}}
        reconciler.recorder.drift_detected("app", "dev", sha, details, "web: replicas")
        status = reader.get_status("app", "dev")
        assert status is not None and status.sync == "OutOfSync"
        assert len(reader.history(app="app", env="dev")) == 2
        reconciler.recorder.drift_cleared("app", "dev", sha, ["web"])
        status = reader.get_status("app", "dev")
        assert status is not None and status.sync == "Synced"
        # As each operation is written, the status with it is not yet there for others.
        assert seen == [("Synced", 1), ("OutOfSync", 2)], seen
