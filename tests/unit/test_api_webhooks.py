"""Webhooks: each provider's signature is checked before anything else, bad or missing
signatures trigger nothing, other refs and events are ignored, bodies are bounded while
read, and every request is counted by provider and result."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gitswarm.api import ApiSettings, WebhookSecrets, create_app
from gitswarm.api.webhooks import sign, sign_generic
from gitswarm.errors import LockedError
from gitswarm.reconcile.metrics import Metrics
from tests.fake_agent import FakeAgent, client_for
from tests.shared_app import SharedApp, shared_app

SECRET = "webhook-secret-Zq8"
OLD_SECRET = "previous-secret-Y2"
SHA = "0123456789abcdef0123456789abcdef01234567"
LIMIT = 4096
NOW = 1_796_000_000  # the API's clock in these tests (unix seconds)


class Audit:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, actor: str, action: str, target: str, details: Any) -> None:
        self.calls.append((actor, action, target, dict(details)))


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def shared() -> SharedApp:
    settings = ApiSettings(
        webhooks=WebhookSecrets(
            github=(SECRET, OLD_SECRET), gitlab=(SECRET,), gitea=(SECRET,), generic=(SECRET,)
        ),
        max_body_bytes=LIMIT,
        clock=lambda: NOW,
    )
    return shared_app(settings)  # each test seats its own agent, audit and metrics


@pytest.fixture
def client(shared: SharedApp, agent: FakeAgent, audit: Audit, metrics: Metrics) -> Iterator[Any]:
    with shared.bound(agent=agent, audit=audit, metrics=metrics) as app, client_for(app) as c:
        yield c


def generic_headers(body: bytes, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    return {"X-Gitswarm-Signature": sign_generic(secret, body, at)}


def counted(metrics: Metrics, provider: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "gitswarm_webhook_requests_total", {"provider": provider, "result": result}
    )
    return value or 0.0


def github_push(ref: str = "refs/heads/main", after: str = SHA) -> bytes:
    return json.dumps(
        {"ref": ref, "after": after, "pusher": {"name": "octocat"}, "sender": {"login": "oc"}}
    ).encode()


def github_headers(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": "sha256=" + sign(secret, body),
        "Content-Type": "application/json",
    }


# --- GitHub -----------------------------------------------------------------------------------


def test_a_signed_github_push_to_the_followed_ref_triggers_once(
    client: Any, agent: FakeAgent, audit: Audit, metrics: Metrics
) -> None:
    body = github_push()
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 202
    assert r.json()["ok"] is True and r.json()["queued"]["pending"] == 1
    [req] = agent.triggers
    assert (req.trigger, req.ref, req.actor) == ("webhook", "refs/heads/main", "octocat")
    # A hint to look at Git: the pushed commit is not what the agent is told to deploy.
    assert (req.revision, req.app, req.env) == (None, None, None)
    [(actor, action, target, details)] = audit.calls
    assert (actor, action, target) == ("webhook:github", "sync", "*/*")
    assert details["after"] == SHA and details["pusher"] == "octocat"
    assert details["delivery"] == "d-1"
    assert counted(metrics, "github", "accepted") == 1


def test_a_rotated_out_secret_still_in_the_list_is_accepted(client: Any, agent: FakeAgent) -> None:
    body = github_push()
    r = client.post("/webhooks/github", content=body, headers=github_headers(body, OLD_SECRET))
    assert r.status_code == 202 and len(agent.triggers) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        "sha256=not-hex-at-all",
        "sha256=" + sign("wrong-secret", github_push()),
        sign(SECRET, github_push()),  # the right HMAC without the sha256= prefix
        "sha256=" + sign(SECRET, github_push())[:-1],  # one digit short
        "sha256=é" + sign(SECRET, github_push()),  # non-ASCII: still just a mismatch
    ],
)
def test_a_missing_or_bad_github_signature_is_401_and_triggers_nothing(
    client: Any, agent: FakeAgent, audit: Audit, metrics: Metrics, signature: str | None
) -> None:
    body = github_push()
    headers = github_headers(body)
    del headers["X-Hub-Signature-256"]
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    r = client.post(
        "/webhooks/github",
        content=body,
        headers={k: v.encode("utf-8") for k, v in headers.items()},  # raw UTF-8 bytes
    )
    assert r.status_code == 401
    assert r.json()["ok"] is False and r.json()["error"]["reason"] == "Unauthorized"
    assert agent.triggers == [] and audit.calls == []
    assert counted(metrics, "github", "unauthorized") == 1


def test_a_signature_over_a_different_body_is_rejected(client: Any, agent: FakeAgent) -> None:
    signed = github_push()
    sent = github_push(after="f" * 40)
    r = client.post("/webhooks/github", content=sent, headers=github_headers(signed))
    assert r.status_code == 401 and agent.triggers == []


def test_a_push_to_another_branch_is_ignored(
    client: Any, agent: FakeAgent, metrics: Metrics
) -> None:
    body = github_push(ref="refs/heads/feature")
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 202 and r.json() == {"ok": True, "ignored": "ref"}
    assert agent.triggers == []
    assert counted(metrics, "github", "ignored") == 1


def test_a_tag_push_is_another_ref(client: Any, agent: FakeAgent) -> None:
    body = github_push(ref="refs/tags/v1.0.0")
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.json()["ignored"] == "ref" and agent.triggers == []


def test_a_deleted_branch_is_ignored(client: Any, agent: FakeAgent) -> None:
    body = github_push(after="0" * 40)
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 202 and r.json()["ignored"] == "deleted"
    assert agent.triggers == []


def test_ping_is_answered_200_and_other_events_are_ignored(
    client: Any, agent: FakeAgent, metrics: Metrics
) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    r = client.post("/webhooks/github", content=body, headers=github_headers(body, event="ping"))
    assert r.status_code == 200 and r.json() == {"ok": True, "ping": "pong"}
    r = client.post("/webhooks/github", content=body, headers=github_headers(body, event="issues"))
    assert r.status_code == 202 and r.json()["ignored"] == "event"
    assert agent.triggers == []
    assert counted(metrics, "github", "ignored") == 2


def test_an_unsigned_ping_is_401_too(client: Any) -> None:
    r = client.post("/webhooks/github", content=b"{}", headers={"X-GitHub-Event": "ping"})
    assert r.status_code == 401


def test_a_form_encoded_github_push_is_understood(client: Any, agent: FakeAgent) -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": github_push().decode()}).encode()
    headers = github_headers(body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 202 and len(agent.triggers) == 1


def test_the_pusher_s_name_is_one_short_line(client: Any, agent: FakeAgent) -> None:
    body = json.dumps(
        {"ref": "refs/heads/main", "after": SHA, "pusher": {"name": "eve\nforged line" + "x" * 500}}
    ).encode()
    assert client.post("/webhooks/github", content=body, headers=github_headers(body)).is_success
    actor = agent.triggers[0].actor
    assert actor is not None and "\n" not in actor and len(actor) == 200
    assert actor.startswith("eveforged line")


def test_a_form_with_too_many_fields_is_400(client: Any, agent: FakeAgent) -> None:
    body = "&".join(f"f{i}=x" for i in range(50)).encode()
    headers = github_headers(body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert client.post("/webhooks/github", content=body, headers=headers).status_code == 400
    assert agent.triggers == []


@pytest.mark.parametrize(
    ("body", "headers_event"),
    [
        (b"not json", "push"),
        (b"[1, 2]", "push"),
        (b'{"ref": "refs/heads/main"}', "push"),  # no 'after'
        (b'{"ref": "refs/heads/main", "after": "HEAD~1"}', "push"),  # not a commit id
        (b'{"ref": 5, "after": "' + SHA.encode() + b'"}', "push"),
        (b"{}", None),  # no X-GitHub-Event
    ],
)
def test_a_signed_but_malformed_push_is_400(
    client: Any, agent: FakeAgent, metrics: Metrics, body: bytes, headers_event: str | None
) -> None:
    headers = github_headers(body)
    if headers_event is None:
        del headers["X-GitHub-Event"]
    r = client.post("/webhooks/github", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "UsageError"
    assert agent.triggers == []
    assert counted(metrics, "github", "bad_request") == 1


# --- body size ----------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_by_its_content_length(
    client: Any, agent: FakeAgent, metrics: Metrics
) -> None:
    body = b"{" + b" " * LIMIT + b"}"
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 413 and r.json()["error"]["reason"] == "PayloadTooLarge"
    assert agent.triggers == []
    assert counted(metrics, "github", "too_large") == 1


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(
    client: Any, agent: FakeAgent, metrics: Metrics
) -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 64 KiB in all, 16 times the limit
            sent.append(1)
            yield b" " * 1024

    body = b" " * 64 * 1024
    r = client.post("/webhooks/generic", content=chunks(), headers=github_headers(body))
    assert r.status_code == 413
    assert agent.triggers == []
    assert counted(metrics, "generic", "too_large") == 1


def test_a_body_exactly_at_the_limit_is_read(client: Any, agent: FakeAgent) -> None:
    empty = len(json.dumps({"ref": "refs/heads/main", "pad": ""}))
    body = json.dumps({"ref": "refs/heads/main", "pad": " " * (LIMIT - empty)}).encode()
    assert len(body) == LIMIT
    r = client.post("/webhooks/generic", content=body, headers=generic_headers(body))
    assert r.status_code == 202 and len(agent.triggers) == 1


def test_a_lying_content_length_is_not_trusted(client: Any) -> None:
    r = client.post("/webhooks/generic", content=b"{}", headers={"Content-Length": "not-a-number"})
    assert r.status_code == 400


# --- GitLab, Gitea, generic ----------------------------------------------------------------------


def gitlab_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {"object_kind": "push", "ref": ref, "after": SHA, "user_username": "gl-user"}
    ).encode()


def test_gitlab_push_with_the_token_triggers(client: Any, agent: FakeAgent) -> None:
    r = client.post(
        "/webhooks/gitlab",
        content=gitlab_push(),
        headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"},
    )
    assert r.status_code == 202
    [req] = agent.triggers
    assert (req.revision, req.actor, req.ref) == (None, "gl-user", "refs/heads/main")


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
def test_gitlab_without_the_right_token_is_401(
    client: Any, agent: FakeAgent, token: str | None
) -> None:
    headers = {"X-Gitlab-Event": "Push Hook"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    r = client.post("/webhooks/gitlab", content=gitlab_push(), headers=headers)
    assert r.status_code == 401 and agent.triggers == []


def test_gitlab_other_events_and_refs_are_ignored(client: Any, agent: FakeAgent) -> None:
    for event, body in (
        ("Tag Push Hook", gitlab_push("refs/tags/v1")),
        ("Merge Request Hook", b"{}"),
        ("Push Hook", gitlab_push("refs/heads/dev")),
    ):
        r = client.post(
            "/webhooks/gitlab",
            content=body,
            headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": event},
        )
        assert r.status_code == 202 and "ignored" in r.json(), event
    assert agent.triggers == []


def gitea_push() -> bytes:
    return json.dumps(
        {"ref": "refs/heads/main", "after": SHA, "pusher": {"login": "tea", "username": "tea"}}
    ).encode()


def test_gitea_push_with_a_hex_signature_triggers(client: Any, agent: FakeAgent) -> None:
    body = gitea_push()
    r = client.post(
        "/webhooks/gitea",
        content=body,
        headers={"X-Gitea-Signature": sign(SECRET, body), "X-Gitea-Event": "push"},
    )
    assert r.status_code == 202 and agent.triggers[0].actor == "tea"


def test_forgejo_headers_are_accepted_too(client: Any, agent: FakeAgent) -> None:
    body = gitea_push()
    r = client.post(
        "/webhooks/gitea",
        content=body,
        headers={"X-Forgejo-Signature": sign(SECRET, body), "X-Forgejo-Event": "push"},
    )
    assert r.status_code == 202 and len(agent.triggers) == 1


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "0" * 64, "zz"])
def test_gitea_with_a_bad_signature_is_401(
    client: Any, agent: FakeAgent, signature: str | None
) -> None:
    headers = {"X-Gitea-Event": "push"}
    if signature is not None:
        headers["X-Gitea-Signature"] = signature
    r = client.post("/webhooks/gitea", content=gitea_push(), headers=headers)
    assert r.status_code == 401 and agent.triggers == []


def test_generic_with_an_empty_body_reconciles_everything(client: Any, agent: FakeAgent) -> None:
    r = client.post("/webhooks/generic", headers=generic_headers(b""))
    assert r.status_code == 202
    [req] = agent.triggers
    assert (req.ref, req.revision, req.app, req.env) == ("refs/heads/main", None, None, None)


def test_generic_app_env_and_after_are_audited_and_the_agent_looks_at_git(
    client: Any, agent: FakeAgent, audit: Audit
) -> None:
    body = json.dumps(
        {"ref": "main", "after": SHA, "actor": "ci", "app": "web", "env": "development"}
    ).encode()
    r = client.post("/webhooks/generic", content=body, headers=generic_headers(body))
    assert r.status_code == 202
    [req] = agent.triggers
    assert (req.ref, req.actor) == ("refs/heads/main", "ci")  # a bare branch name
    assert (req.revision, req.app, req.env) == (None, None, None)
    [(actor, action, target, details)] = audit.calls
    assert (actor, action, target) == ("webhook:generic", "sync", "web/development")
    assert details["after"] == SHA


def test_generic_other_branch_is_ignored_and_unsigned_is_401(client: Any, agent: FakeAgent) -> None:
    body = b'{"ref": "refs/heads/other"}'
    r = client.post("/webhooks/generic", content=body, headers=generic_headers(body))
    assert r.json()["ignored"] == "ref"
    assert client.post("/webhooks/generic", content=b"{}").status_code == 401
    assert agent.triggers == []


# --- configuration, failures, secrets ---------------------------------------------------------


def test_a_provider_without_a_secret_answers_404(agent: FakeAgent, metrics: Metrics) -> None:
    settings = ApiSettings(webhooks=WebhookSecrets(github=(SECRET,)))
    with client_for(create_app(agent, settings, metrics)) as c:
        body = gitlab_push()
        r = c.post(
            "/webhooks/gitlab",
            content=body,
            headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"},
        )
        assert r.status_code == 404 and r.json()["error"]["reason"] == "NotFound"
    assert agent.triggers == []
    assert counted(metrics, "gitlab", "disabled") == 1


def test_an_agent_that_refuses_the_trigger_answers_with_its_error(
    client: Any, agent: FakeAgent, metrics: Metrics
) -> None:
    agent.fail["trigger"] = LockedError("the trigger queue is busy")
    body = github_push()
    r = client.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 409 and r.json()["error"]["reason"] == "Locked"
    assert r.json()["error"]["retryable"] is True
    assert counted(metrics, "github", "failed") == 1


def test_an_audit_that_cannot_be_written_stops_the_trigger(agent: FakeAgent) -> None:
    from gitswarm.errors import StoreError

    def broken(*_args: Any) -> None:
        raise StoreError("database is locked")

    settings = ApiSettings(webhooks=WebhookSecrets(github=(SECRET,)), audit=broken)
    with client_for(create_app(agent, settings)) as c:
        body = github_push()
        r = c.post("/webhooks/github", content=body, headers=github_headers(body))
    assert r.status_code == 503 and r.headers["retry-after"]
    assert agent.triggers == []


def test_secrets_never_reach_logs_responses_or_repr(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = github_push()
    good = client.post("/webhooks/github", content=body, headers=github_headers(body))
    bad = client.post(
        "/webhooks/gitlab",
        content=gitlab_push(),
        headers={"X-Gitlab-Token": SECRET + "-guess", "X-Gitlab-Event": "Push Hook"},
    )
    assert (good.status_code, bad.status_code) == (202, 401)
    settings = ApiSettings(webhooks=WebhookSecrets(github=(SECRET,)))
    for text in (caplog.text, good.text, bad.text, repr(settings), str(settings)):
        assert SECRET not in text
    assert "github" in repr(settings.webhooks)
