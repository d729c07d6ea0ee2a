"""GET /api/v1/dora: a viewer's read, scoped per environment like the others; the
window and settings reach the agent; bad input is 400 naming the parameter. And the
real agent's port answers from the store (the synthetic history of test_dora_metrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitswarm.api import ApiSettings, Grant, create_app, hash_token
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.fake_agent import FakeAgent, client_for
from tests.gitops import GitOpsRepo, service
from tests.unit.test_dora_metrics import HISTORY, WINDOW
from tests.unit.test_store_dora import Clock, record

PROD_VIEWER = "tok-prod-viewer-dora"
TOKENS = {
    hash_token(PROD_VIEWER): Grant("pat", frozenset({"viewer"}), frozenset({"production"})),
}
AUTH = {"Authorization": f"Bearer {PROD_VIEWER}"}


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


def client(agent: Any) -> Any:
    return client_for(create_app(agent, ApiSettings(tokens=TOKENS)))


def test_a_viewer_reads_the_dora_metrics_of_its_environment(agent: FakeAgent) -> None:
    with client(agent) as c:
        r = c.get("/api/v1/dora", params={"env": "production", "since": "7d"}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["dora"]["env"] == "production"
        env, app, since, until, window, threshold = agent.dora_calls[0]
        assert (env, app, window, threshold) == ("production", None, timedelta(hours=1),
                                                 timedelta(seconds=60))  # fmt: skip
        assert until - since == timedelta(days=7)
        r = c.get(
            "/api/v1/dora",
            params={"env": "production", "app": "web", "since": "2025-06-01",
                    "failure_window": "30m", "drift_threshold": "5m"},
            headers=AUTH,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert agent.dora_calls[1][1] == "web"
        assert agent.dora_calls[1][2] == datetime(2025, 6, 1, tzinfo=UTC)
        assert agent.dora_calls[1][4:] == (timedelta(minutes=30), timedelta(minutes=5))


def test_other_environments_and_anonymous_callers_are_refused(agent: FakeAgent) -> None:
    with client(agent) as c:
        r = c.get("/api/v1/dora", params={"env": "development"}, headers=AUTH)
        assert r.status_code == 403
        assert (
            r.json()["error"]["message"] == "pat may not act as viewer in environment 'development'"
        )
        assert c.get("/api/v1/dora", params={"env": "production"}).status_code == 401
    assert agent.dora_calls == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "a while"}, "since must be a duration such as 30d"),
        ({"failure_window": "1 hour"}, "failure_window must be like 30d, 12h"),
        ({"drift_threshold": "x"}, "drift_threshold must be like 30d, 12h"),
    ],
)
def test_bad_parameters_are_400(agent: FakeAgent, params: dict[str, str], message: str) -> None:
    with client(agent) as c:
        r = c.get("/api/v1/dora", params={"env": "production", **params}, headers=AUTH)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(message)
    assert agent.dora_calls == []


def test_the_environment_is_required(agent: FakeAgent) -> None:
    with client(agent) as c:
        r = c.get("/api/v1/dora", headers=AUTH)
    assert r.status_code in (400, 422) and "env" in r.text


def test_the_agent_answers_from_its_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "dora")
    repo.compose({"web": service()})
    repo.commit("v1")
    clock = Clock()
    with Store(str(tmp_path / "state.db"), clock=clock) as store:
        for op in HISTORY:
            record(store, clock, op)
        source = RepoSource.open(str(repo.path))
        agent = Agent(
            source=source,
            store=store,
            reconciler=Reconciler(source, store, lambda _t: FakeSwarm()),
            settings=AgentSettings(events=False),
        )
        got = agent.dora("prod", None, WINDOW.since, WINDOW.until, timedelta(hours=1),
                         timedelta(seconds=60))  # fmt: skip
        assert got == store.dora("prod", since=WINDOW.since, until=WINDOW.until).as_dict()
        assert got["change_failure_rate"]["failed"] == 2
