"""A captured webhook is worth nothing: a replay is refused (200 "duplicate", audited,
nothing triggered) by the provider's delivery id and by the digest of what is signed,
across restarts, on SQLite and PostgreSQL; a generic webhook's signed timestamp must be
fresh; and whatever commit a webhook names, the agent deploys the branch head only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitswarm.api import ApiSettings, WebhookSecrets, create_app
from gitswarm.api.webhooks import sign, sign_generic
from gitswarm.errors import LockedError
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.fake_agent import FakeAgent, client_for
from tests.gitops import GitOpsRepo, service
from tests.shared_app import SharedApp, shared_app

SECRET = "replay-secret-0c3e"
SHA = "89abcdef0123456789abcdef0123456789abcdef"
NOW = 1_796_000_000


def push(after: str = SHA, **extra: Any) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": after, **extra}).encode()


def headers_for(provider: str, body: bytes, delivery: str, at: int = NOW) -> dict[str, str]:
    digest = sign(SECRET, body)
    return {
        "github": {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={digest}",
        },
        "gitlab": {
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": SECRET,
            "X-Gitlab-Event-UUID": delivery,
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        },
        "gitea": {
            "X-Gitea-Event": "push",
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Signature": digest,
        },
        "generic": {"X-Gitswarm-Signature": sign_generic(SECRET, body, at)},
    }[provider]


def make_settings(store: Store, **extra: Any) -> ApiSettings:
    secrets = (SECRET,)
    return ApiSettings(
        webhooks=WebhookSecrets(github=secrets, gitlab=secrets, gitea=secrets, generic=secrets),
        audit=store.audit,
        deliveries=store,
        **{"clock": lambda: NOW, **extra},
    )


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def shared() -> SharedApp:
    secrets = (SECRET,)
    return shared_app(  # make_settings without the store: each test seats its own
        ApiSettings(
            webhooks=WebhookSecrets(github=secrets, gitlab=secrets, gitea=secrets, generic=secrets),
            clock=lambda: NOW,
        )
    )


@pytest.fixture
def client(shared: SharedApp, agent: FakeAgent, store: Store, metrics: Metrics) -> Iterator[Any]:
    seated = {"agent": agent, "audit": store.audit, "deliveries": store, "metrics": metrics}
    with shared.bound(**seated) as app, client_for(app) as c:
        yield c


def refusals(store: Store) -> list[Any]:
    return [e for e in store.audit_events() if e.action == "webhook-replay-refused"]


def replayed(metrics: Metrics, provider: str) -> float:
    value = metrics.registry.get_sample_value(
        "gitswarm_webhook_requests_total", {"provider": provider, "result": "replayed"}
    )
    return value or 0.0


# --- replays --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea", "generic"])
def test_a_replayed_delivery_changes_nothing_and_is_audited(
    client: Any, agent: FakeAgent, store: Store, metrics: Metrics, provider: str
) -> None:
    body = push(pusher={"name": "octocat"})
    headers = headers_for(provider, body, "delivery-1")
    first = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert first.status_code == 202, first.text
    again = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == {"ok": True, "ignored": "duplicate"}
    assert len(agent.triggers) == 1
    [event] = refusals(store)
    assert (event.actor, event.target) == (f"webhook:{provider}", "*/*")
    assert event.details["result"] == "refused" and event.details["after"] == SHA
    if provider != "generic":
        assert event.details["delivery"] == "delivery-1"
    assert [e.action for e in store.audit_events()] == ["webhook-replay-refused", "sync"]
    assert replayed(metrics, provider) == 1


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_replay_with_a_fresh_delivery_id_is_refused_by_its_body(
    client: Any, agent: FakeAgent, store: Store, provider: str
) -> None:
    """The delivery id is not signed: a replay may come with a new one. The body is."""
    body = push()
    assert client.post(
        f"/webhooks/{provider}", content=body, headers=headers_for(provider, body, "d-1")
    ).is_success
    r = client.post(
        f"/webhooks/{provider}", content=body, headers=headers_for(provider, body, "forged-2")
    )
    assert r.status_code == 200 and r.json()["ignored"] == "duplicate"
    assert len(agent.triggers) == 1 and len(refusals(store)) == 1


def test_a_replay_is_refused_after_the_agent_restarts(store_url: str) -> None:
    body = push()
    headers = headers_for("github", body, "d-restart")
    for expected in (202, 200):
        agent = FakeAgent()
        with Store(store_url) as store, client_for(create_app(agent, make_settings(store))) as c:
            assert c.post("/webhooks/github", content=body, headers=headers).status_code == expected
        assert len(agent.triggers) == (1 if expected == 202 else 0)


def test_a_delivery_the_agent_could_not_take_can_be_redelivered(
    client: Any, agent: FakeAgent, store: Store
) -> None:
    body = push()
    headers = headers_for("github", body, "d-busy")
    agent.fail["trigger"] = LockedError("the trigger queue is busy")
    assert client.post("/webhooks/github", content=body, headers=headers).status_code == 409
    del agent.fail["trigger"]
    r = client.post("/webhooks/github", content=body, headers=headers)  # GitHub's "Redeliver"
    assert r.status_code == 202 and len(agent.triggers) == 1
    assert refusals(store) == []


def test_other_events_and_refs_are_not_remembered(client: Any, agent: FakeAgent) -> None:
    ping = {**headers_for("github", b"{}", "p"), "X-GitHub-Event": "ping"}
    for _ in range(2):
        assert client.post("/webhooks/github", content=b"{}", headers=ping).status_code == 200
    other = push(ref="refs/heads/feature")
    for _ in range(2):
        r = client.post(
            "/webhooks/github", content=other, headers=headers_for("github", other, "o")
        )
        assert r.status_code == 202 and r.json()["ignored"] == "ref"
    assert agent.triggers == []


# --- the generic provider's signed timestamp --------------------------------------------------


def test_a_generic_replay_within_the_window_is_refused_and_a_fresh_signature_is_new(
    client: Any, agent: FakeAgent, store: Store
) -> None:
    body = b""  # "look at Git now": the same body, signed at another time, is a new request
    assert client.post("/webhooks/generic", headers=headers_for("generic", body, "")).is_success
    r = client.post("/webhooks/generic", headers=headers_for("generic", body, ""))
    assert r.status_code == 200 and r.json()["ignored"] == "duplicate"
    later = headers_for("generic", body, "", at=NOW - 1)
    assert client.post("/webhooks/generic", headers=later).status_code == 202
    assert len(agent.triggers) == 2 and len(refusals(store)) == 1


def _refused(client: Any, headers: dict[str, str], body: bytes = b"") -> str:
    r = client.post("/webhooks/generic", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["reason"] == "Unauthorized"
    message: str = r.json()["error"]["message"]
    return message


HOW = "sign as X-Gitswarm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"


def test_a_stale_or_future_generic_timestamp_is_refused(
    client: Any, agent: FakeAgent, store: Store
) -> None:
    body = push()
    assert _refused(client, headers_for("generic", body, "", at=NOW - 301), body) == (
        f"X-Gitswarm-Signature: the signature's timestamp t={NOW - 301} is 301 s old, more "
        "than the 300 s allowed; sign the request when sending it (and check the sender's "
        "clock)"
    )
    assert "is 600 s in the future" in _refused(
        client, headers_for("generic", body, "", at=NOW + 600), body
    )
    assert client.post(
        "/webhooks/generic", content=body, headers=headers_for("generic", body, "", at=NOW - 300)
    ).is_success
    assert len(agent.triggers) == 1
    assert [e.action for e in store.audit_events()] == ["sync"]


def test_an_absent_malformed_or_moved_generic_timestamp_is_refused(
    client: Any, agent: FakeAgent, store: Store
) -> None:
    body = push()
    assert _refused(client, {}, body) == (
        f"missing X-Gitswarm-Signature header, the request is not signed: {HOW}"
    )
    old = {"X-Signature-256": "sha256=" + sign(SECRET, body)}  # the former, timeless format
    assert _refused(client, old, body) == (
        "X-Signature-256 signs the body without a timestamp, so a captured request could be "
        f"replayed at any time; it is no longer accepted: {HOW}"
    )
    v1 = sign(SECRET, f"{NOW}.".encode() + body)
    for header in (f"v1={v1}", f"t=soon,v1={v1}", f"t={NOW}", f"t={NOW},t={NOW},v1={v1}"):
        message = _refused(client, {"X-Gitswarm-Signature": header}, body)
        assert message == f"X-Gitswarm-Signature is malformed: {HOW}", header
    moved = {"X-Gitswarm-Signature": f"t={NOW - 1},v1={v1}"}  # t is signed: it cannot move
    assert _refused(client, moved, body) == (
        "X-Gitswarm-Signature does not match the body: signature rejected"
    )
    assert agent.triggers == [] and store.audit_events() == []


def test_a_rotated_generic_signature_may_carry_two_v1_values(client: Any, agent: FakeAgent) -> None:
    body = push()
    wrong = sign("the-old-secret", f"{NOW}.".encode() + body)
    right = sign(SECRET, f"{NOW}.".encode() + body)
    header = {"X-Gitswarm-Signature": f"t={NOW},v1={wrong},v1={right}"}
    assert client.post("/webhooks/generic", content=body, headers=header).status_code == 202
    assert len(agent.triggers) == 1


# --- an old commit in a webhook: the agent deploys the branch head ----------------------------


def _image(swarm: FakeSwarm) -> str:
    [svc] = swarm.services("replay")
    return str(svc.spec["TaskTemplate"]["ContainerSpec"]["Image"]).split("@")[0]


def test_a_webhook_naming_an_old_commit_deploys_the_branch_head_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    repo = GitOpsRepo(tmp_path / "repo", "replay")
    repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
    old = repo.commit("v1")
    repo.compose({"web": service("127.0.0.1:5000/busybox:2")})
    head = repo.commit("v2")
    swarm = FakeSwarm()
    with Store(str(tmp_path / "state.db")) as store:
        source = RepoSource.open(str(repo.path))
        reconciler = Reconciler(source, store, lambda _t: swarm)
        agent = Agent(
            source=source, store=store, reconciler=reconciler, settings=AgentSettings(events=False)
        )
        agent.git.check(TriggerRequest("poll"))
        agent.run_pending()
        assert _image(swarm) == "127.0.0.1:5000/busybox:2"
        syncs = len(store.history(app="app", env="dev"))

        sent = iter(range(NOW - 100, NOW))  # each request signed a second later

        def generic(body: bytes) -> Any:
            headers = {"X-Gitswarm-Signature": sign_generic(SECRET, body, next(sent))}
            return c.post("/webhooks/generic", content=body, headers=headers)

        with client_for(create_app(agent, make_settings(store))) as c:
            # A validly signed webhook naming the old commit (as a replay of a captured
            # one would): the agent looks at Git, finds nothing new, deploys nothing.
            captured = push(after=old, app="app", env="dev")
            r = generic(captured)
            assert r.status_code == 202 and r.json()["queued"] == {"queued": ["git"]}
            agent.run_pending()
            status = store.get_status("app", "dev")
            assert status is not None and status.revision == head
            assert len(store.history(app="app", env="dev")) == syncs
            assert _image(swarm) == "127.0.0.1:5000/busybox:2"

            # Git moved on (not polled yet): the same old commit in a webhook brings the
            # new head, fetched by the agent itself.
            repo.compose({"web": service("127.0.0.1:5000/busybox:3")})
            newer = repo.commit("v3")
            assert generic(captured).status_code == 202
            agent.run_pending()
        status = store.get_status("app", "dev")
        assert status is not None and status.revision == newer
        assert _image(swarm) == "127.0.0.1:5000/busybox:3"
        assert {o.revision for o in store.history(app="app", env="dev")} == {head, newer}

        # The agent's own guarantee, whoever calls it: a webhook trigger never carries
        # a revision, an app or an environment into a sync.
        queued = agent.trigger(TriggerRequest("webhook", app="app", env="dev", revision=old))
        assert queued == {"queued": ["git"]}
        agent.run_pending()
        status = store.get_status("app", "dev")
        assert status is not None and status.revision == newer


def test_the_tolerance_is_a_setting_of_the_api() -> None:
    from gitswarm.api import settings_from_mapping
    from gitswarm.errors import ConfigError

    assert settings_from_mapping({}).webhook_tolerance == 300
    assert settings_from_mapping({"webhook_tolerance": 60}).webhook_tolerance == 60
    with pytest.raises(ConfigError, match="webhook_tolerance must be between 1 and 3600"):
        settings_from_mapping({"webhook_tolerance": 0})
    with pytest.raises(ConfigError, match=r"api\.webhook_tolerance must be an integer"):
        settings_from_mapping({"webhook_tolerance": "5m"})
