"""The dashboard's promotion forms over the real PromotionService (the Promoter on a real
Git repository and SQLite store, a FakeSwarm): dry run, request, approval by another
user, commit; no self-approval; reject with a reason; a viewer sees no button and is
refused; a forged or stale form changes nothing. (On the real swarm, in a real browser:
tests/e2e/test_dashboard_browser.py.)
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitswarm.api import ApiSettings, create_app
from gitswarm.cli.serve import look_at_git
from gitswarm.model.account import RoleBinding
from gitswarm.model.agent import TriggerRequest
from gitswarm.promote.service import PromotionService
from gitswarm.reconcile.agent import Agent, AgentSettings
from tests.dashboard_rig import CHEAP, csrf_of, password_of, sign_in
from tests.fake_agent import client_for
from tests.unit.promotion_rig import REPO, Rig, make_rig

USERS = {
    # carol may approve in prod too: only her being the requester stops her.
    "carol": (
        RoleBinding("deployer", ("prod",)),
        RoleBinding("approver", ("prod",)),
        RoleBinding("viewer", ("dev",)),
    ),
    "alice": (RoleBinding("approver", ("prod",)), RoleBinding("viewer", ("dev",))),
    "vera": (RoleBinding("viewer", ("*",)),),
}
PROD = "/ui/apps/web/envs/prod"


@dataclass
class Site:
    rig: Rig
    agent: Agent
    app: Any

    def user(self, name: str) -> Any:
        client = client_for(self.app)
        client.__enter__()
        assert sign_in(client, name).status_code == 303
        return client

    def audit(self, actor: str, action: str) -> list[Any]:
        return [
            e for e in self.rig.store.audit_events(limit=None, actor=actor) if e.action == action
        ]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    rig = make_rig(tmp_path)
    rig.settings({"approvals": 1})
    rig.sync("dev")
    rig.sync("prod")
    for name, bindings in USERS.items():
        rig.store.add_user(name, CHEAP.hash(password_of(name)), bindings)
    agent = Agent(
        source=rig.reconciler.source,
        store=rig.store,
        reconciler=rig.reconciler,
        settings=AgentSettings(events=False),
    )
    agent.git.check(TriggerRequest("poll"))
    agent.run_pending()
    service = PromotionService(rig.promoter(), committed=lambda o: look_at_git(agent, o))
    settings = ApiSettings(
        audit=rig.store.audit, accounts=rig.store, sse_interval=0.05, sse_lifetime=0.3
    )
    app = create_app(agent, settings, promotions=service, records=rig.store)
    try:
        yield Site(rig, agent, app)
    finally:
        rig.store.close()


def _request(site: Site, client: Any) -> tuple[int, Any]:
    preview = client.get(f"{PROD}/promote")
    assert preview.status_code == 200, preview.text
    answer = client.post(
        f"{PROD}/promote",
        data={"csrf": csrf_of(preview.text), "images": f"{REPO}:1.1.0"},
        follow_redirects=False,
    )
    [pending] = site.rig.store.pending_promotions()
    return pending.id, answer


def test_a_deployer_requests_from_the_page_and_another_user_approves_it(site: Site) -> None:
    rig, head = site.rig, site.rig.head()
    carol = site.user("carol")
    assert 'href="/ui/apps/web/envs/prod/promote">Promote from dev…' in carol.get(PROD).text
    assert "Promote to prod…" in carol.get("/ui/apps/web/envs/dev").text

    preview = carol.get(f"{PROD}/promote").text
    assert "Dry run: what the promotion would commit" in preview
    assert "-TAG=1.0.0" in preview and "+TAG=1.1.0" in preview
    assert "<strong>source-healthy</strong>: pass" in preview
    assert f'name="images" value="{REPO}:1.1.0"' in preview and 'id="confirm-promote"' in preview
    assert "needs approvals" in preview
    assert rig.head() == head  # a dry run commits nothing

    pid, answer = _request(site, carol)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PROD}?done=promotion-pending"
    assert rig.head() == head
    [requested] = [e for e in site.audit("carol", "promote") if not e.details.get("dry_run")]
    assert requested.details["result"] == "requested" and requested.target == "web/prod"

    own = carol.get(PROD).text
    assert f'id="promotion-{pid}"' in own and "You requested it" in own
    assert f'action="/ui/promotions/{pid}/approve"' not in own
    assert f'action="/ui/promotions/{pid}/reject"' not in own
    refused = carol.post(
        f"/ui/promotions/{pid}/approve", data={"csrf": csrf_of(own)}, follow_redirects=False
    )
    assert refused.status_code == 403
    assert "carol requested this promotion and cannot approve it" in html.unescape(refused.text)
    assert site.audit("carol", "approve")[-1].details["result"] == "forbidden"
    assert "1 waiting for approval" in carol.get("/ui/").text

    alice = site.user("alice")
    listing = alice.get("/ui/promotions").text
    assert f'action="/ui/promotions/{pid}/approve"' in listing
    approved = alice.post(
        f"/ui/promotions/{pid}/approve",
        data={"csrf": csrf_of(listing), "comment": "looks good", "back": "promotions"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    assert approved.headers["location"] == "/ui/promotions?done=promotion-committed"
    assert rig.head() != head and rig.tag_in("prod") == "1.1.0"
    assert rig.git("log", "-1", "--format=%(trailers:key=Approved-By,valueonly)") == "alice"
    assert site.audit("alice", "approve")[-1].details["result"] == "requested"
    committed = rig.head()
    replay = alice.post(
        f"/ui/promotions/{pid}/approve",
        data={"csrf": csrf_of(listing), "comment": "looks good", "back": "promotions"},
        follow_redirects=False,
    )  # the same captured request once more: it decides nothing twice
    assert replay.status_code == 400
    assert f"promotion {pid} is committed, not pending" in replay.text
    assert rig.head() == committed

    site.agent.run_pending()  # the agent's threads, at once: it looked at Git and deployed
    [status] = [s for s in site.agent.statuses() if s["env"] == "prod"]
    assert status["head"] == rig.head() == status["deployed"]
    assert "No promotion is waiting" in alice.get("/ui/promotions").text


def test_a_rejection_needs_a_reason_and_commits_nothing(site: Site) -> None:
    head = site.rig.head()
    pid, _ = _request(site, site.user("carol"))
    alice = site.user("alice")
    page = alice.get(PROD).text
    assert f'action="/ui/promotions/{pid}/reject"' in page
    bare = alice.post(
        f"/ui/promotions/{pid}/reject", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert bare.status_code == 400
    assert "a rejection needs a reason: it goes into the history" in bare.text
    rejected = alice.post(
        f"/ui/promotions/{pid}/reject",
        data={"csrf": csrf_of(page), "reason": "not before the release notes"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    assert rejected.headers["location"] == f"{PROD}?done=rejected"
    assert site.rig.store.get_promotion(pid).status == "rejected"
    assert site.rig.head() == head
    assert "Rejected: nothing is committed." in alice.get(f"{PROD}?done=rejected").text


def test_a_viewer_sees_no_promotion_button_and_every_endpoint_refuses_it(site: Site) -> None:
    pid, _ = _request(site, site.user("carol"))
    vera = site.user("vera")
    for path in (PROD, "/ui/apps/web/envs/dev", "/ui/promotions"):
        text = vera.get(path).text
        assert "/promote" not in text and "/approve" not in text and "/reject" not in text
    csrf = csrf_of(vera.get(PROD).text)
    assert vera.get(f"{PROD}/promote").status_code == 403
    for path, fields in (
        (f"{PROD}/promote", {"images": f"{REPO}:1.1.0"}),
        (f"/ui/promotions/{pid}/approve", {}),
        (f"/ui/promotions/{pid}/reject", {"reason": "no"}),
    ):
        r = vera.post(path, data={"csrf": csrf, **fields}, follow_redirects=False)
        assert r.status_code == 403, path
    refusals = [
        (e.action, e.target)
        for e in site.rig.store.audit_events(limit=None, actor="vera")
        if e.details.get("result") == "forbidden"
    ]
    assert sorted(refusals) == [
        ("approve", "web/prod"), ("promote", "web/prod"), ("promote", "web/prod"),
        ("reject", "web/prod"),
    ]  # fmt: skip
    assert site.rig.store.get_promotion(pid).status == "pending"


def test_a_forged_or_stale_form_changes_nothing(site: Site) -> None:
    rig, head = site.rig, site.rig.head()
    carol = site.user("carol")
    forged = carol.post(f"{PROD}/promote", data={"images": f"{REPO}:1.1.0"})
    assert forged.status_code == 403 and "did not come from your dashboard session" in forged.text
    assert rig.store.pending_promotions() == []

    # The dry run showed 1.1.0; dev runs 1.2.0 by the time it is confirmed.
    preview = carol.get(f"{PROD}/promote").text
    rig.set_tag("dev", "1.2.0")
    rig.sync("dev")
    stale = carol.post(
        f"{PROD}/promote",
        data={"csrf": csrf_of(preview), "images": f"{REPO}:1.1.0"},
        follow_redirects=False,
    )
    assert stale.status_code == 409
    assert f"dev runs {REPO}:1.2.0, not 1.1.0" in html.unescape(stale.text)
    assert rig.store.pending_promotions() == [] and rig.tag_in("prod") == "1.0.0"
    assert rig.head() != head  # only the test's own commit to dev


def test_the_app_stream_sends_the_waiting_promotions_with_each_viewers_buttons(site: Site) -> None:
    carol = site.user("carol")
    pid, _ = _request(site, carol)
    alice = site.user("alice")
    events = "/ui/events?app=web&env=prod"

    def promotions_event(client: Any) -> str:
        body = client.get(events).text  # ends after sse_lifetime
        return body.split("event: promotions\n")[1].split("\n\n")[0]

    theirs, own = promotions_event(alice), promotions_event(carol)
    assert f'action="/ui/promotions/{pid}/approve"' in theirs
    assert f'id="promotion-{pid}"' in own and "/approve" not in own
    page = alice.get(PROD).text
    alice.post(f"/ui/promotions/{pid}/approve", data={"csrf": csrf_of(page)})
    assert f"promotion-{pid}" not in promotions_event(carol)  # committed: no longer waiting
