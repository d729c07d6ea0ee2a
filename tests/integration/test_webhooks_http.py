"""Webhooks over real HTTP: uvicorn on 127.0.0.1 (a free port, its own thread), httpx as
the sender, the fake agent behind. Signed pushes trigger, unsigned ones do not, a burst
of 100 concurrent pushes is accepted whole (coalescing is the agent's job, not the
HTTP side's: every accepted webhook reaches ``trigger``), and /metrics counts them.

Then the real agent behind it (served Git remote, real swarm, the store): a captured
webhook replayed later is refused and audited, and a webhook naming an old commit never
deploys it — only the branch head the agent fetches itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gitswarm.api import ApiSettings, ServerHandle, WebhookSecrets, create_app, serve_in_thread
from gitswarm.api.webhooks import sign, sign_generic
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent
from tests.gitops import service
from tests.integration.agent_rig import WEBHOOK_SECRET, AgentRig, running_rig, wait_for

SECRET = "integration-secret-4f2a"
LIMIT = 64 * 1024


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def server(agent: FakeAgent) -> Iterator[ServerHandle]:
    settings = ApiSettings(
        webhooks=WebhookSecrets(github=(SECRET,), generic=(SECRET,)), max_body_bytes=LIMIT
    )
    with serve_in_thread(create_app(agent, settings, Metrics()), "127.0.0.1", 0) as handle:
        yield handle


def push(n: int) -> bytes:
    return json.dumps(
        {"ref": "refs/heads/main", "after": f"{n:040x}", "pusher": {"name": f"dev{n}"}}
    ).encode()


def signed(body: bytes) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + sign(SECRET, body),
        "Content-Type": "application/json",
    }


def test_a_signed_push_triggers_exactly_once(server: ServerHandle, agent: FakeAgent) -> None:
    body = push(1)
    r = httpx.post(f"{server.url}/webhooks/github", content=body, headers=signed(body))
    assert r.status_code == 202, r.text
    # The pushed commit is not passed on: the agent fetches the branch head itself.
    assert [(t.trigger, t.revision, t.actor) for t in agent.triggers] == [("webhook", None, "dev1")]


def test_an_unsigned_push_is_401_and_triggers_nothing(
    server: ServerHandle, agent: FakeAgent
) -> None:
    body = push(2)
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    r = httpx.post(f"{server.url}/webhooks/github", content=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["reason"] == "Unauthorized"
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + sign("guess", body)}
    assert httpx.post(f"{server.url}/webhooks/github", content=body, headers=bad).status_code == 401
    assert agent.triggers == []


def test_a_burst_of_100_concurrent_pushes_all_reach_the_agent(
    server: ServerHandle, agent: FakeAgent
) -> None:
    revisions = range(1, 101)  # not 0: an all-zero `after` is a deleted branch
    bodies = [push(n) for n in revisions]
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    with httpx.Client(base_url=server.url, limits=limits, timeout=30) as client:

        def send(body: bytes) -> int:
            return client.post("/webhooks/github", content=body, headers=signed(body)).status_code

        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(send, bodies))
    assert statuses == [202] * 100
    assert len(agent.triggers) == 100
    assert {t.actor for t in agent.triggers} == {f"dev{n}" for n in revisions}


def test_metrics_count_webhooks_by_result(server: ServerHandle) -> None:
    body = push(3)
    url = f"{server.url}/webhooks/github"
    assert httpx.post(url, content=body, headers=signed(body)).status_code == 202
    assert httpx.post(url, content=body, headers={"X-GitHub-Event": "push"}).status_code == 401
    text = httpx.get(f"{server.url}/metrics").text
    assert 'gitswarm_webhook_requests_total{provider="github",result="accepted"} 1.0' in text
    assert 'gitswarm_webhook_requests_total{provider="github",result="unauthorized"} 1.0' in text


def test_an_oversized_chunked_body_is_413_over_the_wire(
    server: ServerHandle, agent: FakeAgent
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1024 + 4):
            yield b" " * 1024

    r = httpx.post(
        f"{server.url}/webhooks/generic",
        content=chunks(),
        headers={"X-Gitswarm-Signature": "t=0,v1=" + "0" * 64},
    )
    assert r.status_code == 413
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert agent.triggers == []


def test_a_body_declared_too_large_is_413_before_it_is_read(
    server: ServerHandle, agent: FakeAgent
) -> None:
    r = httpx.post(
        f"{server.url}/webhooks/github",
        content=b" " * (LIMIT * 16),
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert r.status_code == 413 and r.json()["error"]["reason"] == "PayloadTooLarge"
    assert agent.triggers == []


# --- the real agent: replays and old commits ------------------------------------------------


@pytest.mark.swarm
def test_a_captured_webhook_replayed_later_rolls_nothing_back(rig: AgentRig, registry: str) -> None:
    first = rig.push({"web": service()}, "first")
    with running_rig(rig):
        wait_for(rig.deployed(first), 60)
        # What a sender posted for the first commit, captured by someone on the way.
        generic_body = json.dumps(
            {"ref": "main", "after": first, "app": "app", "env": rig.env}
        ).encode()
        generic = {
            "X-Gitswarm-Signature": sign_generic(WEBHOOK_SECRET, generic_body, int(time.time()))
        }
        assert rig.send("generic", generic_body, generic).status_code == 202

        second = rig.push({"web": service(f"{registry}/busybox:2")}, "second")
        github_body = json.dumps({"ref": "refs/heads/main", "after": second}).encode()
        github = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": "sha256=" + sign(WEBHOOK_SECRET, github_body),
        }
        assert rig.send("github", github_body, github).status_code == 202
        wait_for(rig.deployed(second), 60)

        # Replayed, both are refused: nothing queued, each refusal in the audit trail.
        for provider, body, headers in (
            ("generic", generic_body, generic),
            ("github", github_body, github),
        ):
            r = rig.send(provider, body, headers)
            assert (r.status_code, r.json()) == (200, {"ok": True, "ignored": "duplicate"})
        assert rig.store is not None
        refused = [e for e in rig.store.audit_events() if e.action == "webhook-replay-refused"]
        assert sorted(e.actor for e in refused) == ["webhook:generic", "webhook:github"]

        # Even a freshly signed webhook naming the first commit deploys nothing old: the
        # agent looks at Git, and the head has not moved.
        fresh = {
            "X-Gitswarm-Signature": sign_generic(WEBHOOK_SECRET, generic_body, int(time.time()) + 1)
        }
        assert rig.send("generic", generic_body, fresh).status_code == 202
        time.sleep(1.0)
        assert rig.agent is not None
        wait_for(rig.agent.idle, 30)
        assert rig.status().revision == second

        # The branch moves on: a webhook naming the first commit brings the new head.
        third = rig.push({"web": service(f"{registry}/busybox:2", environment={"V": "3"})}, "third")
        later = {
            "X-Gitswarm-Signature": sign_generic(WEBHOOK_SECRET, generic_body, int(time.time()) + 2)
        }
        assert rig.send("generic", generic_body, later).status_code == 202
        wait_for(rig.deployed(third), 60)
        wait_for(rig.agent.idle, 30)
        deployed = [o.revision for o in rig.operations("sync")]
        assert deployed.count(first) == 1  # the first deploy, never again
        assert rig.status().revision == third
