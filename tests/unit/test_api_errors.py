"""The JSON API's answers: what each route returns, and every error, whoever raises it,
in one shape with the HTTP status its class calls for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from gitswarm.api import ApiSettings, create_app
from gitswarm.api.errors import http_status
from gitswarm.errors import (
    ConfigError,
    GitswarmError,
    HealthError,
    LockedError,
    NotFoundError,
    PolicyError,
    Problem,
    PromotionError,
    RenderError,
    SourceError,
    StoreError,
    SwarmError,
    UsageError,
)
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import APPS, ENVS, FakeAgent, client_for
from tests.shared_app import SharedApp, shared_app

ERROR_KEYS = {"reason", "message", "retryable", "problems"}


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def shared() -> SharedApp:
    return shared_app(ApiSettings(anonymous_read=True, history_limit=3, max_history_limit=10))


@pytest.fixture
def client(shared: SharedApp, agent: FakeAgent, metrics: Metrics) -> Iterator[Any]:
    with (
        shared.bound(agent=agent, metrics=metrics) as app,
        client_for(app, raise_server_exceptions=False) as c,
    ):
        yield c


def assert_error(response: Any, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and set(body["error"]) == ERROR_KEYS
    assert body["error"]["reason"] == reason
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = body["error"]
    return error


# --- the routes ---------------------------------------------------------------------------------


def test_status_lists_every_app_and_environment(client: Any) -> None:
    body = client.get("/api/v1/status").json()
    assert body["ok"] is True
    assert {(s["app"], s["env"]) for s in body["statuses"]} == {(a, e) for a in APPS for e in ENVS}
    only = client.get("/api/v1/status?app=web&env=staging").json()["statuses"]
    assert [(s["app"], s["env"]) for s in only] == [("web", "staging")]


def test_one_status_and_its_diff(client: Any) -> None:
    body = client.get("/api/v1/apps/web/envs/staging").json()
    assert body["status"]["sync"] == "Synced" and body["status"]["env"] == "staging"
    assert client.get("/api/v1/apps/web/envs/staging/diff").json()["diff"]["in_sync"] is True


def test_an_unknown_app_is_404_with_the_agent_s_error(client: Any) -> None:
    error = assert_error(client.get("/api/v1/apps/nope/envs/staging"), 404, "NotFound")
    assert "nope" in error["message"] and error["retryable"] is False
    assert_error(client.get("/api/v1/apps/nope/envs/staging/diff"), 404, "NotFound")


@pytest.mark.parametrize("name", ["Web", "we..b", "-web", "a%20b"])
def test_a_name_that_cannot_exist_is_404_without_asking_the_agent(
    client: Any, agent: FakeAgent, name: str
) -> None:
    agent.fail["status"] = AssertionError("the agent must not be asked")
    assert_error(client.get(f"/api/v1/apps/{name}/envs/staging"), 404, "NotFound")
    assert_error(client.get(f"/api/v1/apps/{'a' * 41}/envs/staging"), 400, "UsageError")


def test_history_has_a_default_and_a_bounded_limit(client: Any) -> None:
    assert len(client.get("/api/v1/history").json()["operations"]) == 3
    assert len(client.get("/api/v1/history?limit=10").json()["operations"]) == 6
    for bad in ("0", "-1", "11", "many"):
        error = assert_error(client.get(f"/api/v1/history?limit={bad}"), 400, "UsageError")
        assert error["problems"][0]["rule"] == "request"
        assert "limit" in error["problems"][0]["message"]
    ops = client.get("/api/v1/history?app=worker&env=production").json()["operations"]
    assert [(o["app"], o["env"]) for o in ops] == [("worker", "production")]


def test_an_operation_by_id(client: Any) -> None:
    assert client.get("/api/v1/operations/2").json()["operation"]["id"] == 2
    assert_error(client.get("/api/v1/operations/999"), 404, "NotFound")
    assert_error(client.get("/api/v1/operations/abc"), 400, "UsageError")
    assert_error(client.get("/api/v1/operations/0"), 400, "UsageError")


def test_values_the_agent_returns_are_encoded(client: Any, agent: FakeAgent) -> None:
    at = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    agent.operations[1] = {"id": 1, "app": "web", "env": "development", "at": at, "x": (1, 2)}
    body = client.get("/api/v1/operations/1").json()["operation"]
    assert body["at"] == "2025-06-01T12:00:00+00:00"
    assert body["x"] == [1, 2]


def test_unknown_routes_and_methods_answer_in_the_same_shape(client: Any) -> None:
    assert_error(client.get("/api/v2/status"), 404, "NotFound")
    assert_error(client.delete("/api/v1/status"), 405, "MethodNotAllowed")
    assert_error(client.get("/webhooks/github"), 405, "MethodNotAllowed")


# --- the agent's errors, mapped by class --------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UsageError("bad flag"), 400),
        (RenderError("", problems=[Problem("unset", "base/a.yml", 3, 1, "interpolation")]), 422),
        (PolicyError("root user"), 422),
        (ConfigError("gitswarm.yml"), 422),
        (NotFoundError("gone"), 404),
        (LockedError("a sync is running"), 409),
        (SourceError("remote down"), 503),
        (SwarmError("dockerd restarting"), 503),
        (StoreError("db locked"), 503),
        (HealthError("timeout"), 500),
        (PromotionError("gate failed"), 500),
        (GitswarmError("generic"), 500),
    ],
)
def test_agent_errors_map_to_http_by_class(
    client: Any, agent: FakeAgent, error: GitswarmError, status: int
) -> None:
    assert http_status(error) == status
    agent.fail["diff"] = error
    body = assert_error(client.get("/api/v1/apps/web/envs/staging/diff"), status, error.reason)
    assert body == error.as_dict()  # exactly the error's own as_dict()
    r = client.get("/api/v1/apps/web/envs/staging/diff")
    if status in (409, 503):
        assert r.headers["retry-after"]


def test_problems_are_carried_with_file_and_line(client: Any, agent: FakeAgent) -> None:
    agent.fail["status"] = RenderError(
        problems=[Problem("VERSION is not set", "environments/dev/.env", 4, 2, "interpolation")]
    )
    error = assert_error(client.get("/api/v1/apps/web/envs/staging"), 422, "RenderFailed")
    assert error["problems"] == [
        {
            "file": "environments/dev/.env",
            "line": 4,
            "column": 2,
            "rule": "interpolation",
            "message": "VERSION is not set",
        }
    ]


def test_an_unexpected_exception_is_a_bare_500(
    client: Any, agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    agent.fail["statuses"] = RuntimeError("password=hunter2 in a traceback")
    error = assert_error(client.get("/api/v1/status"), 500, "InternalError")
    assert "hunter2" not in error["message"]
    assert "hunter2" in caplog.text  # the operator's log has it, the client does not


# --- probes and metrics -------------------------------------------------------------------------


def test_healthz_is_always_200(client: Any, agent: FakeAgent) -> None:
    agent.ready = False
    assert client.get("/healthz").json() == {"ok": True}


def test_readyz_follows_the_agent(client: Any, agent: FakeAgent) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    agent.ready = False
    agent.checks = {"git": {"ok": False, "detail": "last fetch 10 min ago"}}
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "ready": False, "checks": agent.checks}
    agent.fail["readiness"] = StoreError("db gone")
    r = client.get("/readyz")
    assert r.status_code == 503 and "StoreFailed" in r.json()["checks"]["agent"]["detail"]


def test_probes_and_metrics_need_no_token(agent: FakeAgent) -> None:
    with client_for(create_app(agent, ApiSettings())) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert c.get("/api/v1/status").status_code == 401


def test_metrics_serve_the_agent_s_registry(client: Any, metrics: Metrics) -> None:
    metrics.set_state("web", "staging", "Synced", "Healthy")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'gitswarm_app_sync_state{app="web",env="staging",state="Synced"} 1.0' in r.text


def test_the_openapi_schema_describes_every_route(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/status",
        "/api/v1/apps/{app}/envs/{env}",
        "/api/v1/apps/{app}/envs/{env}/diff",
        "/api/v1/apps/{app}/envs/{env}/sync",
        "/api/v1/history",
        "/api/v1/operations/{op_id}",
        "/webhooks/github",
        "/webhooks/gitlab",
        "/webhooks/gitea",
        "/webhooks/generic",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    errors = schema["paths"]["/api/v1/apps/{app}/envs/{env}"]["get"]["responses"]
    assert errors["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")
