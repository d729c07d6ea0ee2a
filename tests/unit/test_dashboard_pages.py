"""What the dashboard's pages show and refuse: the overview grid (sync, health, deployed
vs head, last operation, drift, hold, promotions; filters), the application page
(services, tasks, diff per field, drift, timeline), a sync's dry run and its queueing,
rollback to a revision that ran healthy only, live fragments over SSE, a CSRF token in
every form, security headers, labels for every control."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_rig import OLDER, Rig, csrf_of, make_rig, sign_in
from tests.fake_agent import _status

USERS = ("admin-all", "viewer-all", "deployer-development")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, only=USERS, sse_interval=0.05, sse_lifetime=0.3)


@pytest.fixture
def admin(rig: Rig) -> Iterator[Any]:
    with rig.client() as c:
        assert sign_in(c, "admin-all").status_code == 303
        yield c


def set_statuses(rig: Rig, **changes: dict[str, Any]) -> None:
    """Change FakeAgent's statuses: ``web__staging={"health": "Degraded"}``."""
    rows = {}
    for app in ("web", "worker"):
        for env in ("development", "staging", "production"):
            rows[(app, env)] = {**_status(app, env), **changes.get(f"{app}__{env}", {})}
    rig.agent.statuses = lambda: list(rows.values())  # type: ignore[method-assign]
    rig.agent.status = lambda a, e: rows[(a, e)]  # type: ignore[method-assign]


def cell(html: str, app: str, env: str) -> str:
    match = re.search(rf'<td id="cell-{app}--{env}".*?</td>', html, re.S)
    assert match, f"no cell {app}/{env}"
    return match.group(0)


def test_the_grid_shows_every_badge(rig: Rig, admin: Any) -> None:
    set_statuses(
        rig,
        web__staging={
            "sync": "OutOfSync",
            "health": "Degraded",
            "head": "c" * 40,
            "drift": {"web": {"drift": [{"field": "replicas", "before": 2, "after": 5}]}},
        },
        web__production={"reason": "DeploymentWindowClosed"},
    )
    op = rig.store.start_operation(
        "sync", "web", "staging", holder="t", trigger="user", actor="alice", revision="c" * 40
    )
    rig.store.start_operation(
        "sync", "web", "staging", holder="t", trigger="user", dry_run=True
    )  # a dry run is not the last operation
    html = admin.get("/ui/").text
    staging = cell(html, "web", "staging")
    assert "sync-outofsync" in staging and ">OutOfSync<" in staging
    assert ">Degraded<" in staging
    assert "aaaaaaa" in staging and "→ <code>ccccccc</code>" in staging  # deployed → head
    assert "Drift: 1 service" in staging
    assert "sync Running" in staging
    assert f"#{op}" not in staging
    assert ">Hold<" in cell(html, "web", "production")
    assert "Drift" not in cell(html, "web", "development")
    assert "→" not in cell(html, "web", "development")


def test_the_grid_filters_by_environment_and_health(rig: Rig, admin: Any) -> None:
    set_statuses(rig, worker__staging={"health": "Degraded"})
    html = admin.get("/ui/?env=staging").text
    assert 'id="cell-web--staging"' in html and 'id="cell-web--production"' not in html
    assert '<option value="staging" selected>' in html
    html = admin.get("/ui/?health=Degraded").text
    assert re.findall(r'id="cell-([a-z-]+)"', html) == ["worker--staging"]
    html = admin.get("/ui/?health=<script>&env=../x").text  # unknown filters: ignored
    assert "<script>" not in html
    assert len(re.findall(r'id="cell-', html)) == 6


def test_the_application_page_shows_services_tasks_diff_drift_and_timeline(
    rig: Rig, admin: Any
) -> None:
    plan = {
        "services": [
            {
                "service": "web",
                "action": "update",
                "note": "",
                "fields": [
                    {
                        "path": "TaskTemplate.ContainerSpec.Image",
                        "before": "img:1",
                        "after": "img:2",
                    }
                ],
                "drift": [
                    {
                        "path": "Mode.Replicated.Replicas",
                        "field": "replicas",
                        "before": 2,
                        "after": 5,
                    }
                ],
            },
            {"service": "db", "action": "unchanged", "fields": [], "drift": []},
        ]
    }
    set_statuses(
        rig,
        web__staging={
            "plan": plan,
            "services": [
                {
                    "service": "web",
                    "state": "Progressing",
                    "running": 1,
                    "desired": 2,
                    "message": "1 of 2 running",
                    "image": "img:1",
                }
            ],
            "drift": {"web": {"drift": [{"field": "replicas", "before": 2, "after": 5}]}},
        },
    )
    rig.agent.operations[3]["reason"] = "HealthTimeout"
    rig.agent.operations[3]["result"] = "Failed"
    html = admin.get("/ui/apps/web/envs/staging").text
    assert "<td>1/2</td>" in html and "1 of 2 running" in html
    assert "<h3>Tasks</h3>" in html and "<code>n1</code>" in html  # node of the task
    assert "TaskTemplate.ContainerSpec.Image" in html
    assert "<del>img:1</del>" in html and "<ins>img:2</ins>" in html
    assert "Drift: changed on the swarm, not in Git" in html
    assert "<code>replicas</code>" in html
    assert "<h3>db " not in html  # an unchanged service is not listed as a change
    timeline = html.split('id="timeline"')[1]
    assert "#3 sync" in timeline and "Failed" in timeline and "HealthTimeout" in timeline
    assert "bbbbbbb" in timeline and "by Ada" in timeline


def test_the_sync_preview_is_a_dry_run_and_the_confirmation_deploys_what_it_showed(
    rig: Rig, admin: Any
) -> None:
    plan = {
        "services": [
            {
                "service": "web",
                "action": "update",
                "drift": [],
                "fields": [{"path": "Labels.version", "before": "1", "after": "2"}],
            }
        ]
    }
    set_statuses(rig, web__development={"plan": plan, "head": "c" * 40})
    preview = admin.get("/ui/apps/web/envs/development/sync")
    assert "Dry run" in preview.text and "Labels.version" in preview.text
    assert "<code>ccccccc</code>" in preview.text
    assert f'name="revision" value="{"c" * 40}"' in preview.text
    assert rig.agent.triggers == []  # looking is not syncing
    r = admin.post(
        "/ui/apps/web/envs/development/sync",
        data={"csrf": csrf_of(preview.text), "reason": "ship it", "revision": "c" * 40},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/apps/web/envs/development?done=sync"
    [req] = rig.agent.triggers
    assert (req.trigger, req.app, req.env, req.actor, req.reason, req.revision) == (
        "user",
        "web",
        "development",
        "admin-all",
        "ship it",
        "c" * 40,
    )
    events = [(e.actor, e.action, e.target) for e in rig.store.audit_events()]
    assert ("admin-all", "sync", "web/development") in events
    assert "Sync queued" in admin.get(r.headers["location"]).text
    bad = admin.post(
        "/ui/apps/web/envs/development/sync",
        data={"csrf": csrf_of(preview.text), "revision": "main..evil"},
    )
    assert bad.status_code == 400
    assert "&#39;revision&#39; must be a commit id, tag or branch name" in bad.text
    assert len(rig.agent.triggers) == 1


def test_rollback_offers_and_takes_only_revisions_that_ran_healthy(rig: Rig, admin: Any) -> None:
    html = admin.get("/ui/apps/web/envs/development").text
    assert f'<option value="{OLDER}">' in html
    csrf = csrf_of(html)
    bad = admin.post(
        "/ui/apps/web/envs/development/rollback",
        data={"csrf": csrf, "revision": "d" * 40, "reason": "x"},
    )
    assert bad.status_code == 400
    assert "has not run healthy in development" in bad.text
    assert rig.agent.triggers == []
    ok = admin.post(
        "/ui/apps/web/envs/development/rollback",
        data={"csrf": csrf, "revision": OLDER, "reason": "bad release"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    [req] = rig.agent.triggers
    assert (req.revision, req.reason) == (OLDER, "rollback: bad release")


def test_a_post_without_the_session_s_csrf_token_is_refused_and_audited(
    rig: Rig, admin: Any
) -> None:
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"reason": "x"}):
        for path in (
            "/ui/apps/web/envs/development/sync",
            "/ui/logout",
            "/ui/apps/web/envs/development/rollback",
        ):
            r = admin.post(path, data=data, follow_redirects=False)
            assert r.status_code == 403, (path, data)
            assert "did not come from your dashboard session" in r.text
    r = admin.post(
        "/ui/apps/web/envs/development/sync",
        content=b'{"csrf": 1}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 403
    assert rig.agent.triggers == []
    refused = [e for e in rig.store.audit_events(limit=None) if e.action == "csrf-refused"]
    assert len(refused) == 13 and all(e.actor == "admin-all" for e in refused)
    assert admin.get("/ui/").status_code == 200  # still signed in


class Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.labels: set[str] = set()
        self.controls: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"method": a.get("method"), "fields": {}})
        elif tag in ("input", "select", "textarea") and self.forms:
            self.forms[-1]["fields"][a.get("name")] = a.get("value")
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a)


PAGES = [
    "/ui/",
    "/ui/apps/web/envs/development",
    "/ui/apps/web/envs/development/sync",
    "/ui/operations/1",
    "/ui/dora",
    "/ui/promotions",
    "/ui/apps/web/envs/production/promote",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_form_carries_the_token_and_every_control_a_label(admin: Any, path: str) -> None:
    r = admin.get(path)
    assert r.status_code == 200
    parser = Forms()
    parser.feed(r.text)
    token = csrf_of(r.text)
    for form in parser.forms:
        if form["method"] == "post":
            assert form["fields"].get("csrf") == token, form
    for control in parser.controls:
        assert control.get("id") in parser.labels, control
    assert '<html lang="en">' in r.text and 'href="#main"' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and " on" + "click=" not in r.text  # no inline script


def test_the_static_files_are_served_from_the_package(admin: Any) -> None:
    js = admin.get("/ui/static/htmx.min.js")
    assert js.status_code == 200 and len(js.content) > 40_000
    assert admin.get("/ui/static/htmx-sse.js").status_code == 200
    assert admin.get("/ui/static/../sessions.py").status_code == 404


def test_the_grid_stream_sends_a_cell_when_it_changes(rig: Rig, admin: Any) -> None:
    body = admin.get("/ui/events?view=grid").text  # ends after sse_lifetime
    assert body.startswith("retry: 1000")
    assert "event: cell-web--staging\n" in body and "Synced" in body
    set_statuses(rig, web__staging={"sync": "OutOfSync"})
    body = admin.get("/ui/events?view=grid").text
    staging = body.split("event: cell-web--staging\n")[1].split("\n\n")[0]
    assert "OutOfSync" in staging and all(
        line.startswith("data: ") for line in staging.splitlines()
    )


def test_the_application_stream_sends_summary_and_timeline(admin: Any) -> None:
    body = admin.get("/ui/events?app=web&env=staging").text
    assert "event: summary\n" in body and "event: timeline\n" in body


def test_a_signed_out_browser_gets_no_stream(rig: Rig) -> None:
    with rig.client() as c:
        assert c.get("/ui/events?view=grid").status_code == 401


def test_pending_promotions_are_listed_with_their_buttons_and_badged(rig: Rig, admin: Any) -> None:
    promo = rig.store.create_promotion(
        "web", "staging", "production", images={"web": "2.0"}, requested_by="alice"
    )
    html = admin.get("/ui/promotions").text
    assert f'id="promotion-{promo.id}"' in html and "staging → production" in html
    assert f'action="/ui/promotions/{promo.id}/approve"' in html  # admin, not the requester
    # dashboard_rig made one already: two into production wait
    assert "2 waiting for approval" in cell(admin.get("/ui/").text, "web", "production")


def test_without_a_promotion_service_the_records_are_read_only(tmp_path: Path) -> None:
    from gitswarm.api import create_app

    rig = make_rig(tmp_path, only=("admin-all",))
    rig.app = create_app(rig.agent, rig.settings, rig.metrics, records=rig.store)
    with rig.client() as client:
        assert sign_in(client, "admin-all").status_code == 303
        main = client.get("/ui/promotions").text.split("<main")[1].split("</main>")[0]
        assert 'id="promotion-' in main and "<form" not in main
        page = client.get("/ui/apps/web/envs/production").text
        assert "/promote" not in page and "/approve" not in page


def test_a_grid_cell_is_rendered_once_for_every_stream() -> None:
    from gitswarm.api.dashboard import views
    from gitswarm.api.dashboard.live import Live
    from gitswarm.api.dashboard.routes import templates
    from tests.fake_agent import FakeAgent

    now = [100.0]
    live = Live(FakeAgent(), None, templates(), 0.5, clock=lambda: now[0])
    calls: list[str] = []
    render = live._fragment
    live._fragment = lambda macro, *a: calls.append(macro) or render(macro, *a)  # type: ignore[method-assign]
    cell = views.cell_of(_status("web", "staging"), "web", "staging", None)
    same = views.cell_of(_status("web", "staging"), "web", "staging", None)
    assert live._cell_html(cell) == live._cell_html(same)
    assert calls == ["cell"]
    changed = views.cell_of(
        {**_status("web", "staging"), "sync": "OutOfSync"}, "web", "staging", None
    )
    assert "OutOfSync" in live._cell_html(changed)
    now[0] += 10  # ages move on: rendered afresh
    live._cell_html(cell)
    assert calls == ["cell", "cell", "cell"]
