"""Bearer tokens: hashed in settings, scoped by role and environment, reads optionally
open; every mutating request audited, refusals too; a token never shows up anywhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gitswarm.api import ApiSettings, Grant, create_app, hash_token
from gitswarm.api.auth import Authenticator
from gitswarm.api.errors import Unauthorized
from gitswarm.errors import StoreError
from tests.fake_agent import APPS, ENVS, FakeAgent, client_for
from tests.shared_app import SharedApp, shared_app

DEV_DEPLOYER = "tok-dev-deployer-6f1c"
VIEWER = "tok-viewer-all-93aa"
ADMIN = "tok-admin-0b7e"
PROD_VIEWER = "tok-prod-viewer-55d1"

TOKENS = {
    hash_token(DEV_DEPLOYER): Grant("dev", frozenset({"deployer"}), frozenset({"development"})),
    "sha256:" + hash_token(VIEWER).upper(): Grant("vera", frozenset({"viewer"})),
    hash_token(ADMIN): Grant("root", frozenset({"admin"})),
    hash_token(PROD_VIEWER): Grant("pat", frozenset({"viewer"}), frozenset({"production"})),
}


class Audit:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, actor: str, action: str, target: str, details: Any) -> None:
        self.calls.append((actor, action, target, dict(details)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def audit() -> Audit:
    return Audit()


def make_client(agent: FakeAgent, audit: Audit, **settings: Any) -> Any:
    return client_for(create_app(agent, ApiSettings(tokens=TOKENS, audit=audit, **settings)))


@pytest.fixture(scope="module")
def shared() -> SharedApp:
    return shared_app(ApiSettings(tokens=TOKENS))  # each test seats its agent and audit


@pytest.fixture
def client(shared: SharedApp, agent: FakeAgent, audit: Audit) -> Iterator[Any]:
    with shared.bound(agent=agent, audit=audit) as app, client_for(app) as c:
        yield c


READS = [
    "/api/v1/status",
    "/api/v1/apps/web/envs/development",
    "/api/v1/apps/web/envs/development/diff",
    "/api/v1/history",
    "/api/v1/operations/1",
]


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_token_by_default(client: Any, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["reason"] == "Unauthorized"
    assert client.get(path, headers=bearer(VIEWER)).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_anonymous_read_opens_reads_but_not_sync(agent: FakeAgent, audit: Audit, path: str) -> None:
    with make_client(agent, audit, anonymous_read=True) as c:
        assert c.get(path).status_code == 200
        r = c.post("/api/v1/apps/web/envs/development/sync")
        assert r.status_code == 401
        assert c.get(path, headers=bearer("not-a-token")).status_code == 401
    assert agent.triggers == []


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-token",
        "Bearer ",
        "Bearer",
        f"Basic {VIEWER}",
        f"Token {VIEWER}",
        VIEWER,
        f"Bearer {VIEWER}x",
        f"Bearer {VIEWER[:-1]}",
        "Bearer " + hash_token(VIEWER),  # the stored hash is not a token
    ],
)
def test_a_bad_authorization_header_is_401(client: Any, header: str) -> None:
    r = client.get("/api/v1/status", headers={"Authorization": header})
    assert r.status_code == 401


def test_the_bearer_scheme_is_case_insensitive(client: Any) -> None:
    r = client.get("/api/v1/status", headers={"Authorization": f"bearer {VIEWER}"})
    assert r.status_code == 200


def test_a_deployer_of_development_may_sync_development_only(
    client: Any, agent: FakeAgent, audit: Audit
) -> None:
    r = client.post("/api/v1/apps/web/envs/development/sync", headers=bearer(DEV_DEPLOYER))
    assert r.status_code == 202 and r.json()["queued"]["env"] == "development"
    r = client.post("/api/v1/apps/web/envs/production/sync", headers=bearer(DEV_DEPLOYER))
    assert r.status_code == 403 and r.json()["error"]["reason"] == "Forbidden"
    [req] = agent.triggers
    assert (req.trigger, req.app, req.env, req.actor) == ("api", "web", "development", "dev")
    assert [(a, act, t, d["result"]) for a, act, t, d in audit.calls] == [
        ("dev", "sync", "web/development", "requested"),
        ("dev", "sync", "web/production", "forbidden"),
    ]


def test_a_viewer_may_not_sync_and_the_refusal_is_audited(
    client: Any, agent: FakeAgent, audit: Audit
) -> None:
    r = client.post("/api/v1/apps/web/envs/staging/sync", headers=bearer(VIEWER))
    assert r.status_code == 403
    assert agent.triggers == []
    assert audit.calls == [("vera", "sync", "web/staging", {"via": "api", "result": "forbidden"})]


def test_an_admin_may_sync_anywhere_with_a_revision_and_reason(
    client: Any, agent: FakeAgent, audit: Audit
) -> None:
    r = client.post(
        "/api/v1/apps/worker/envs/production/sync",
        headers=bearer(ADMIN),
        json={"revision": "v1.2.3", "reason": "hotfix"},
    )
    assert r.status_code == 202
    [req] = agent.triggers
    assert (req.revision, req.reason, req.actor) == ("v1.2.3", "hotfix", "root")
    [(_, _, _, details)] = audit.calls
    assert details["revision"] == "v1.2.3" and details["reason"] == "hotfix"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        b'{"revision": "--upload-pack=evil"}',
        b'{"revision": "a..b"}',
        b'{"revision": 5}',
        b'{"dry_run": true}',
        b'{"reason": 7}',
        b'{"override_window": "yes", "reason": "x"}',
    ],
)
def test_a_bad_sync_body_is_400_and_queues_nothing(
    client: Any, agent: FakeAgent, audit: Audit, body: bytes
) -> None:
    r = client.post("/api/v1/apps/web/envs/development/sync", headers=bearer(ADMIN), content=body)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "UsageError"
    assert agent.triggers == [] and audit.calls == []


def test_a_sync_body_over_the_limit_is_413(agent: FakeAgent, audit: Audit) -> None:
    with make_client(agent, audit, max_body_bytes=64) as c:
        r = c.post(
            "/api/v1/apps/web/envs/development/sync",
            headers=bearer(ADMIN),
            json={"reason": "x" * 100},
        )
    assert r.status_code == 413 and agent.triggers == []


def test_an_unwritable_audit_means_no_sync(agent: FakeAgent) -> None:
    def broken(*_args: Any) -> None:
        raise StoreError("the store is unreachable")

    settings = ApiSettings(tokens=TOKENS, audit=broken)
    with client_for(create_app(agent, settings)) as c:
        r = c.post("/api/v1/apps/web/envs/development/sync", headers=bearer(ADMIN))
    assert r.status_code == 503 and r.json()["error"]["reason"] == "StoreFailed"
    assert agent.triggers == []


def test_lists_show_only_the_environments_a_token_covers(client: Any) -> None:
    r = client.get("/api/v1/status", headers=bearer(PROD_VIEWER))
    assert {row["env"] for row in r.json()["statuses"]} == {"production"}
    r = client.get("/api/v1/status", headers=bearer(VIEWER))
    assert len(r.json()["statuses"]) == len(APPS) * len(ENVS)
    r = client.get("/api/v1/history", headers=bearer(PROD_VIEWER))
    assert {op["env"] for op in r.json()["operations"]} == {"production"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/apps/web/envs/development",
        "/api/v1/apps/web/envs/development/diff",
        "/api/v1/status?env=development",
        "/api/v1/history?env=development",
        "/api/v1/operations/1",  # operation 1 is web/development in the fake
    ],
)
def test_one_object_outside_the_token_s_environments_is_403(client: Any, path: str) -> None:
    r = client.get(path, headers=bearer(PROD_VIEWER))
    assert r.status_code == 403, r.text


def test_the_token_never_reaches_logs_responses_or_audit(
    client: Any, audit: Audit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [
        client.post("/api/v1/apps/web/envs/development/sync", headers=bearer(DEV_DEPLOYER)).text,
        client.post("/api/v1/apps/web/envs/production/sync", headers=bearer(DEV_DEPLOYER)).text,
        client.get("/api/v1/status", headers=bearer(DEV_DEPLOYER + "-wrong")).text,
    ]
    texts += [caplog.text, repr(audit.calls), repr(ApiSettings(tokens=TOKENS))]
    for text in texts:
        assert DEV_DEPLOYER not in text


def test_every_stored_hash_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the time taken must not depend on which stored hash matched."""
    import hmac

    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    authenticator = Authenticator(ApiSettings(tokens=TOKENS))
    monkeypatch.setattr("gitswarm.api.auth.hmac.compare_digest", counting)
    assert authenticator.authenticate(f"Bearer {DEV_DEPLOYER}").user == "dev"
    assert len(calls) == len(TOKENS)
    calls.clear()
    with pytest.raises(Unauthorized):
        authenticator.authenticate("Bearer nope")
    assert len(calls) == len(TOKENS)


def test_only_an_admin_may_override_a_deployment_window_and_must_say_why(
    client: Any, agent: FakeAgent, audit: Audit
) -> None:
    path = "/api/v1/apps/web/envs/development/sync"
    r = client.post(
        path, headers=bearer(DEV_DEPLOYER), json={"override_window": True, "reason": "x"}
    )
    assert r.status_code == 403 and agent.triggers == []
    assert audit.calls == [
        (
            "dev",
            "override-deployment-window",
            "web/development",
            {"via": "api", "result": "forbidden"},
        )
    ]
    r = client.post(path, headers=bearer(ADMIN), json={"override_window": True})
    assert r.status_code == 400 and "reason" in r.json()["error"]["message"]
    assert agent.triggers == [] and len(audit.calls) == 1
    r = client.post(
        path, headers=bearer(ADMIN), json={"override_window": True, "reason": "fix the outage"}
    )
    assert r.status_code == 202
    [req] = agent.triggers
    assert (req.override_window, req.actor) == ("fix the outage", "root")
    assert audit.calls[-1][3]["override_window"] is True
    r = client.post(path, headers=bearer(DEV_DEPLOYER), json={"override_window": False})
    assert r.status_code == 202 and agent.triggers[-1].override_window is None
