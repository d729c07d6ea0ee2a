"""serve_in_thread: a real uvicorn on 127.0.0.1 in a background thread, reached over
real HTTP; readiness follows the agent, the API answers with bearer tokens, and stop()
lets a request in flight finish before the port closes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gitswarm.api import (
    ApiSettings,
    Grant,
    ServerHandle,
    create_app,
    hash_token,
    serve_in_thread,
)
from gitswarm.errors import OperationError
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent

TOKEN = "integration-token-81c0"


class SlowAgent(FakeAgent):
    """diff() takes a while, as a real plan against Docker can."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()

    def diff(self, app: str, env: str) -> dict[str, Any]:
        self.entered.set()
        time.sleep(1.0)
        return super().diff(app, env)


@pytest.fixture
def agent() -> SlowAgent:
    return SlowAgent()


@pytest.fixture
def server(agent: SlowAgent) -> Iterator[ServerHandle]:
    settings = ApiSettings(
        tokens={hash_token(TOKEN): Grant("ops", frozenset({"deployer"}), frozenset({"staging"}))}
    )
    with serve_in_thread(create_app(agent, settings, Metrics()), "127.0.0.1", 0) as handle:
        yield handle


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_free_port_is_chosen_and_served(server: ServerHandle) -> None:
    assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
    assert server.running
    assert httpx.get(f"{server.url}/healthz").json() == {"ok": True}


def test_readyz_is_503_while_the_agent_is_not_ready(server: ServerHandle, agent: SlowAgent) -> None:
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    agent.ready = False
    agent.checks = {"docker": {"ok": False, "detail": "cannot reach the Docker API"}}
    r = httpx.get(f"{server.url}/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["docker"]["ok"] is False


def test_the_api_over_http_with_a_token(server: ServerHandle, agent: SlowAgent) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{server.url}/api/v1/status").status_code == 401
    r = httpx.get(f"{server.url}/api/v1/status", headers=auth)
    assert {s["env"] for s in r.json()["statuses"]} == {"staging"}
    r = httpx.post(f"{server.url}/api/v1/apps/web/envs/staging/sync", headers=auth)
    assert r.status_code == 202
    r = httpx.post(f"{server.url}/api/v1/apps/web/envs/production/sync", headers=auth)
    assert r.status_code == 403
    assert [(t.app, t.env, t.actor) for t in agent.triggers] == [("web", "staging", "ops")]
    text = httpx.get(f"{server.url}/metrics").text
    assert "gitswarm_webhook_requests_total" in text


def test_stop_lets_a_request_in_flight_finish_then_closes_the_port(agent: SlowAgent) -> None:
    settings = ApiSettings(anonymous_read=True)
    handle = serve_in_thread(create_app(agent, settings, Metrics()), "127.0.0.1", 0)
    results: list[int] = []

    # Waits of 30 s, not httpx's 5 s: what is tested is the order (the request answered,
    # then the port closed), and a loaded 2-core machine is slow, not wrong.
    def slow_request() -> None:
        answer = httpx.get(f"{handle.url}/api/v1/apps/web/envs/staging/diff", timeout=30)
        results.append(answer.status_code)

    client = threading.Thread(target=slow_request)
    client.start()
    assert agent.entered.wait(30)
    handle.stop()
    client.join(30)
    assert results == [200]
    assert not handle.running and refused(handle.port)
    handle.stop()  # idempotent


def test_a_port_in_use_fails_at_once(server: ServerHandle, agent: SlowAgent) -> None:
    with pytest.raises(OperationError, match="cannot listen"):
        serve_in_thread(create_app(agent), "127.0.0.1", server.port)
