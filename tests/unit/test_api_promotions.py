"""The promotion routes: roles per environment, no self-approval, a captured approve
request replayed counts once, refusals audited; over the real Promoter on a fake swarm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitswarm.api import ApiSettings, Grant, create_app, hash_token
from gitswarm.promote.service import PromotionService
from tests.fake_agent import FakeAgent, client_for
from tests.unit.promotion_rig import Rig, make_rig

TOKENS = {
    "carol": Grant("carol", frozenset({"deployer"}), frozenset({"prod"})),
    "alice": Grant("alice", frozenset({"approver"}), frozenset({"prod"})),
    "bob": Grant("bob", frozenset({"admin"})),
    "vera": Grant("vera", frozenset({"viewer"})),
    "dev-approver": Grant("dan", frozenset({"approver"}), frozenset({"dev"})),
}


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{user}"}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path)
    rig.settings({"approvals": 2})
    rig.sync("dev")
    rig.sync("prod")
    try:
        yield rig
    finally:
        rig.store.close()


@pytest.fixture
def client(rig: Rig) -> Iterator[Any]:
    settings = ApiSettings(
        tokens={hash_token(f"tok-{k}"): v for k, v in TOKENS.items()}, audit=rig.store.audit
    )
    app = create_app(FakeAgent(), settings, promotions=PromotionService(rig.promoter()))
    with client_for(app) as c:
        yield c


def request(client: Any, user: str) -> int:
    answer = client.post(
        "/api/v1/promotions", json={"app": "web", "from": "dev", "to": "prod"}, headers=bearer(user)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["result"] == "Pending"
    return int(answer.json()["result"]["promotion_id"])


def test_the_full_flow_through_the_api(client: Any, rig: Rig) -> None:
    head = rig.head()
    pid = request(client, "carol")
    listed = client.get("/api/v1/promotions", headers=bearer("vera")).json()["promotions"]
    assert [(p["id"], p["status"], p["requested_by"]) for p in listed] == [
        (pid, "pending", "carol")
    ]
    first = client.post(f"/api/v1/promotions/{pid}/approve", json={}, headers=bearer("alice"))
    assert first.status_code == 200 and first.json()["result"]["result"] == "Approved"
    replay = client.post(f"/api/v1/promotions/{pid}/approve", json={}, headers=bearer("alice"))
    assert replay.status_code == 400
    assert "alice already decided on promotion" in replay.json()["error"]["message"]
    assert rig.head() == head
    second = client.post(f"/api/v1/promotions/{pid}/approve", json={}, headers=bearer("bob"))
    assert second.status_code == 200, second.text
    assert second.json()["result"]["result"] == "Committed"
    assert rig.tag_in("prod") == "1.1.0"
    assert rig.git("log", "-1", "--format=%(trailers:key=Approved-By,valueonly)").split() == [
        "alice", "bob"
    ]  # fmt: skip


@pytest.mark.parametrize("user", ["vera", "carol", "dev-approver"])
def test_who_lacks_the_approver_role_in_the_target_cannot_approve(
    client: Any, rig: Rig, user: str
) -> None:
    pid = request(client, "bob")
    answer = client.post(f"/api/v1/promotions/{pid}/approve", json={}, headers=bearer(user))
    assert answer.status_code == 403
    assert "may not act as approver in environment 'prod'" in answer.json()["error"]["message"]
    assert rig.store.get_promotion(pid).decisions == ()
    refused = [e for e in rig.store.export_audit() if e.action == "approve"]
    assert refused and refused[-1].details["result"] == "forbidden"


def test_the_requester_cannot_approve_even_as_admin(client: Any, rig: Rig) -> None:
    pid = request(client, "bob")
    answer = client.post(f"/api/v1/promotions/{pid}/approve", json={}, headers=bearer("bob"))
    assert answer.status_code == 403
    assert "bob requested this promotion and cannot approve it" in answer.text


def test_a_viewer_cannot_request_and_anonymous_cannot_read(client: Any) -> None:
    answer = client.post(
        "/api/v1/promotions",
        json={"app": "web", "from": "dev", "to": "prod"},
        headers=bearer("vera"),
    )
    assert answer.status_code == 403
    assert client.get("/api/v1/promotions").status_code == 401


def test_reject_through_the_api_needs_a_reason_and_ends_it(client: Any, rig: Rig) -> None:
    pid = request(client, "carol")
    bad = client.post(f"/api/v1/promotions/{pid}/reject", json={}, headers=bearer("alice"))
    assert bad.status_code == 400 and "needs a reason" in bad.text
    done = client.post(
        f"/api/v1/promotions/{pid}/reject", json={"reason": "freeze"}, headers=bearer("alice")
    )
    assert done.status_code == 200 and done.json()["result"]["result"] == "Rejected"
    assert client.get("/api/v1/promotions", headers=bearer("vera")).json()["promotions"] == []


def test_bad_bodies_are_refused_with_what_to_do(client: Any) -> None:
    answer = client.post(
        "/api/v1/promotions",
        json={"app": "web", "from": "dev", "to": "prod", "force": True},
        headers=bearer("carol"),
    )
    assert answer.status_code == 400 and "unknown field(s) force" in answer.text
    answer = client.post(
        "/api/v1/promotions", json={"app": "../x", "from": "dev", "to": "prod"},
        headers=bearer("carol"),
    )  # fmt: skip
    assert answer.status_code == 400 and "'app' must be an application" in answer.text
