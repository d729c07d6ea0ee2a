"""A sync asked for through the API: its revision is honoured (like `gitswarm sync
--revision`), and an admin's window override reaches the sync and the audit trail."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.apply import Clock
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service

# A Saturday: outside the Mon-Fri window below.
SATURDAY = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _image(swarm: FakeSwarm, name: str) -> str:
    [svc] = [s for s in swarm.services("apisync") if s.name == name]
    return str(svc.spec["TaskTemplate"]["ContainerSpec"]["Image"]).split("@")[0]


def test_an_api_revision_is_deployed_and_an_override_opens_a_closed_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "apisync")
    repo.write_settings(
        policies={
            "deployment_windows": {
                "mode": "enforce",
                "timezone": "UTC",
                "allow": ["Mon-Fri 09:00-17:00"],
            }
        }
    )
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    first = repo.commit("v1")
    repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
    repo.commit("v2")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm, clock=Clock(now=lambda: SATURDAY))
        agent = Agent(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=AgentSettings(events=False),
        )
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()  # the window is closed: held, nothing deployed
        status = store.get_status("app", "dev")
        assert status is not None and status.reason == "DeploymentWindowClosed"
        assert not swarm.services("apisync")

        queued = agent.trigger(
            TriggerRequest(
                "api",
                app="app",
                env="dev",
                revision=first,
                actor="root",
                reason="restore v1 now",
                override_window="restore v1 now",
            )
        )
        assert queued == {"queued": ["app/dev"]}
        agent.run_pending()
        status = store.get_status("app", "dev")
        assert status is not None and status.revision == first, status.message
        assert _image(swarm, "apisync_web") == "127.0.0.1:5000/busybox:1"
        [event] = [e for e in store.audit_events() if e.action == "override-deployment-window"]
        assert (event.actor, event.target) == ("root", "app/dev")
        assert event.details["reason"] == "restore v1 now"
