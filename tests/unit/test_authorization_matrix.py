"""Every endpoint × role × environment, for the JSON API (store tokens) and the
dashboard (signed-in users) alike: what one role may do in one environment is allowed
on both sides, what it may not is 403 and audited, and a page shows a button exactly
when its endpoint would take the request.

The expectation is written out here from SPEC.md section 6 and issue 15, not computed
with access.py, so a change to the one decision shows up as a change of this table.
Promotion as Kargo and Argo CD users expect it: promoting into an environment (and its
dry run) is a deployer's act there; deciding on a promotion is an approver's of its
target; the requester never decides (test_dashboard_promotions.py, and the API's test).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_rig import (
    OLDER,
    ROLES,
    Rig,
    csrf_of,
    make_rig,
    sign_in,
    token_of,
    user_name,
)
from tests.fake_agent import APPS, ENVS
from tests.fake_promotions import SOURCE

# What each role may do, in the environments it is granted (SPEC.md section 6).
MAY: dict[str, set[str]] = {
    "viewer": {"view"},
    "deployer": {"view", "sync", "rollback", "promote", "release-hold"},
    "approver": {"view", "approve", "reject"},
    "admin": {
        "view",
        "sync",
        "rollback",
        "override-window",
        "promote",
        "approve",
        "reject",
        "release-hold",
    },
}
SCOPES = (*ENVS, "*")


def expected(role: str, scope: str, action: str, env: str) -> bool:
    return action in MAY[role] and scope in ("*", env)


@dataclass(frozen=True)
class Endpoint:
    name: str
    action: str
    call: Callable[[Any, str, str], Any]  # (client, env, csrf or token) -> response
    side: str  # "api" or "page"


def _op_id(env: str) -> int:
    return 1 + ENVS.index(env) * len(APPS)  # FakeAgent: web's operation in env


def _promotion_id(env: str) -> int:
    return 1 + ENVS.index(env)  # dashboard_rig: the pending promotion into env


def _fill(path: str, env: str) -> str:
    # dashboard_rig makes a promotion and a hold per environment, in ENVS order
    return path.format(
        env=env, op=_op_id(env), promotion=_promotion_id(env), hold=_promotion_id(env)
    )


def api(method: str, path: str, body: dict[str, Any] | None = None) -> Callable[..., Any]:
    def go(client: Any, env: str, token: str) -> Any:
        url = _fill(path, env)
        headers = {"Authorization": f"Bearer {token}"}
        if method == "GET":
            return client.get(url, headers=headers)
        filled = {k: v.format(env=env, source=SOURCE[env]) if isinstance(v, str) else v
                  for k, v in (body or {}).items()}  # fmt: skip
        content = json.dumps(filled).encode() if filled else b""
        return client.post(url, headers=headers, content=content)

    return go


def page_get(path: str) -> Callable[..., Any]:
    def go(client: Any, env: str, csrf: str) -> Any:
        return client.get(_fill(path, env), follow_redirects=False)

    return go


def page_post(path: str, fields: dict[str, str]) -> Callable[..., Any]:
    def go(client: Any, env: str, csrf: str) -> Any:
        return client.post(_fill(path, env), data={"csrf": csrf, **fields}, follow_redirects=False)

    return go


APP = "/api/v1/apps/web/envs/{env}"
UI = "/ui/apps/web/envs/{env}"
ENDPOINTS = [
    Endpoint("GET /api/v1/status?env", "view", api("GET", "/api/v1/status?env={env}"), "api"),
    Endpoint("GET /api/v1/apps/web/envs/E", "view", api("GET", APP), "api"),
    Endpoint("GET /api/v1/apps/web/envs/E/diff", "view", api("GET", APP + "/diff"), "api"),
    Endpoint("GET /api/v1/history?env", "view", api("GET", "/api/v1/history?env={env}"), "api"),
    Endpoint("GET /api/v1/dora?env", "view", api("GET", "/api/v1/dora?env={env}"), "api"),
    Endpoint("GET /api/v1/operations/N", "view", api("GET", "/api/v1/operations/{op}"), "api"),
    Endpoint("POST /api/v1/.../sync", "sync", api("POST", APP + "/sync"), "api"),
    Endpoint(
        "POST /api/v1/.../sync revision",
        "rollback",
        api("POST", APP + "/sync", {"revision": OLDER}),
        "api",
    ),
    Endpoint(
        "POST /api/v1/.../sync override",
        "override-window",
        api("POST", APP + "/sync", {"override_window": True, "reason": "hotfix"}),
        "api",
    ),
    Endpoint(
        "GET /api/v1/promotions/N", "view", api("GET", "/api/v1/promotions/{promotion}"), "api"
    ),
    Endpoint(
        "POST /api/v1/promotions",
        "promote",
        api("POST", "/api/v1/promotions", {"app": "web", "from": "{source}", "to": "{env}"}),
        "api",
    ),
    Endpoint(
        "POST /api/v1/promotions dry run",
        "promote",
        api(
            "POST",
            "/api/v1/promotions",
            {"app": "web", "from": "{source}", "to": "{env}", "dry_run": True},
        ),
        "api",
    ),
    Endpoint(
        "POST /api/v1/promotions/N/approve",
        "approve",
        api("POST", "/api/v1/promotions/{promotion}/approve", {"comment": "ok"}),
        "api",
    ),
    Endpoint(
        "POST /api/v1/promotions/N/reject",
        "reject",
        api("POST", "/api/v1/promotions/{promotion}/reject", {"reason": "not now"}),
        "api",
    ),
    Endpoint(
        "POST /api/v1/holds/N/release",
        "release-hold",
        api("POST", "/api/v1/holds/{hold}/release", {"reason": "fixed upstream"}),
        "api",
    ),
    Endpoint("GET /ui/apps/web/envs/E", "view", page_get(UI), "page"),
    Endpoint("GET /ui/.../sync (dry run)", "view", page_get(UI + "/sync"), "page"),
    Endpoint("GET /ui/operations/N", "view", page_get("/ui/operations/{op}"), "page"),
    Endpoint("GET /ui/dora?env", "view", page_get("/ui/dora?env={env}"), "page"),
    Endpoint("GET /ui/events?app&env", "view", page_get("/ui/events?app=web&env={env}"), "page"),
    Endpoint("GET /ui/events?op", "view", page_get("/ui/events?op={op}"), "page"),
    Endpoint("POST /ui/.../sync", "sync", page_post(UI + "/sync", {"reason": "matrix"}), "page"),
    Endpoint(
        "POST /ui/.../sync override",
        "override-window",
        page_post(UI + "/sync", {"reason": "hotfix", "override_window": "on"}),
        "page",
    ),
    Endpoint(
        "POST /ui/.../rollback",
        "rollback",
        page_post(UI + "/rollback", {"revision": OLDER, "reason": "matrix"}),
        "page",
    ),
    Endpoint("GET /ui/.../promote (dry run)", "promote", page_get(UI + "/promote"), "page"),
    Endpoint(
        "POST /ui/.../promote",
        "promote",
        page_post(UI + "/promote", {"images": "127.0.0.1:5000/web:1.1.0"}),
        "page",
    ),
    Endpoint(
        "POST /ui/promotions/N/approve",
        "approve",
        page_post("/ui/promotions/{promotion}/approve", {"comment": "ok"}),
        "page",
    ),
    Endpoint(
        "POST /ui/promotions/N/reject",
        "reject",
        page_post("/ui/promotions/{promotion}/reject", {"reason": "not now"}),
        "page",
    ),
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    path: Path = tmp_path_factory.mktemp("matrix")
    return make_rig(path, sse_interval=0.05, sse_lifetime=0.1)


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_in_every_environment(rig: Rig, role: str, scope: str) -> None:
    user = user_name(role, scope)
    wrong: list[str] = []
    with rig.client() as client:
        assert sign_in(client, user).status_code == 303
        csrf = csrf_of(client.get("/ui/").text)
        for env in ENVS:
            for ep in ENDPOINTS:
                last = rig.store.audit_events(limit=1, actor=user)
                before = last[0].id if last else 0
                secret = token_of(user) if ep.side == "api" else csrf
                r = ep.call(client, env, secret)
                allowed = expected(role, scope, ep.action, env)
                if allowed and r.status_code in (401, 403):
                    wrong.append(f"{ep.name} in {env}: refused ({r.status_code}), should pass")
                if not allowed:
                    if r.status_code != 403:
                        wrong.append(f"{ep.name} in {env}: {r.status_code}, should be 403")
                    new = rig.store.audit_events(limit=10, actor=user)
                    refusals = [
                        e for e in new if e.id > before and e.details.get("result") == "forbidden"
                    ]
                    if not refusals:
                        wrong.append(f"{ep.name} in {env}: the 403 was not audited")
                elif ep.name.startswith("POST") and r.status_code not in (200, 202, 303):
                    wrong.append(f"{ep.name} in {env}: {r.status_code} {r.text[:200]}")
    assert wrong == []


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("role", ROLES)
def test_a_page_shows_exactly_the_buttons_its_endpoints_take(
    rig: Rig, role: str, scope: str
) -> None:
    user = user_name(role, scope)
    with rig.client() as client:
        assert sign_in(client, user).status_code == 303
        for env in ENVS:
            r = client.get(f"/ui/apps/web/envs/{env}", follow_redirects=False)
            if not expected(role, scope, "view", env):
                assert r.status_code == 403
                assert "Sync" not in r.text and "Roll back" not in r.text
                continue
            html = r.text
            may_sync = expected(role, scope, "sync", env)
            assert (f'href="/ui/apps/web/envs/{env}/sync"' in html) == may_sync, env
            assert (f'action="/ui/apps/web/envs/{env}/rollback"' in html) == expected(
                role, scope, "rollback", env
            ), env
            preview = client.get(f"/ui/apps/web/envs/{env}/sync").text
            assert ('id="confirm-sync"' in preview) == may_sync, env
            assert ('name="override_window"' in preview) == expected(
                role, scope, "override-window", env
            ), env
            # Promote into env: on env's page ("from ...") and on its source's page ("to ...").
            may_promote = expected(role, scope, "promote", env)
            link = f'href="/ui/apps/web/envs/{env}/promote"'
            assert (link in html) == may_promote, env
            source = client.get(f"/ui/apps/web/envs/{SOURCE[env]}", follow_redirects=False)
            if source.status_code == 200:
                assert (link in source.text) == may_promote, env
            if may_promote:
                dry_run = client.get(f"/ui/apps/web/envs/{env}/promote").text
                assert 'id="confirm-promote"' in dry_run, env
            pid = rig.pending[env]
            for action in ("approve", "reject"):
                button = f'action="/ui/promotions/{pid}/{action}"'
                assert (button in html) == expected(role, scope, action, env), (env, action)
        listing = client.get("/ui/promotions").text
        for env in ENVS:
            pid = rig.pending[env]
            assert (f'id="promotion-{pid}"' in listing) == expected(role, scope, "view", env)
            for action in ("approve", "reject"):
                button = f'action="/ui/promotions/{pid}/{action}"'
                assert (button in listing) == expected(role, scope, action, env), (env, action)


@pytest.mark.parametrize("scope", SCOPES)
def test_the_overview_shows_only_the_environments_granted(rig: Rig, scope: str) -> None:
    with rig.client() as client:
        sign_in(client, user_name("viewer", scope))
        html = client.get("/ui/").text
        api = client.get(
            "/api/v1/status",
            headers={"Authorization": f"Bearer {token_of(user_name('viewer', scope))}"},
        ).json()
    for env in ENVS:
        shown = f'id="cell-web--{env}"' in html
        assert shown == (scope in ("*", env)), env
        assert any(s["env"] == env for s in api["statuses"]) == (scope in ("*", env)), env


class _Nobody:
    """The client of a caller who sends no credentials: the Authorization header an API
    endpoint's call adds is dropped, and there is no session cookie (so no CSRF token)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, url: str, headers: Any = None, **kw: Any) -> Any:
        return self.client.get(url, follow_redirects=False)

    def post(self, url: str, headers: Any = None, **kw: Any) -> Any:
        kw.pop("follow_redirects", None)
        return self.client.post(url, follow_redirects=False, **kw)


SSE = ("GET /ui/events?app&env", "GET /ui/events?op")  # EventSource streams, not pages


@pytest.mark.parametrize("cookie", [None, "ended-or-forged"])
@pytest.mark.parametrize("anonymous_read", [False, True])
def test_nobody_signed_in_gets_401_or_the_sign_in_page_audited_as_unauthenticated(
    tmp_path: Path, anonymous_read: bool, cookie: str | None
) -> None:
    """Not a 403: nobody lacks a role, they are not anyone yet. The API answers 401 with
    WWW-Authenticate, a page sends to sign-in and back; an action is audited as
    ``unauthenticated`` (never ``forbidden``, which a signed-in user without the role gets)."""
    rig = make_rig(
        tmp_path, only=("viewer-all",), anonymous_read=anonymous_read, sse_interval=0.05,
        sse_lifetime=0.1, unauthenticated_audit_rows=1000,  # one row each, not a summary
    )  # fmt: skip
    wrong: list[str] = []
    env = "production"
    with rig.client() as client:
        if cookie:
            client.cookies.set("gitswarm_session", cookie, path="/ui")
        for ep in ENDPOINTS:
            before = max((e.id for e in rig.store.audit_events(limit=1)), default=0)
            r = ep.call(_Nobody(client), env, "")
            new = [e for e in rig.store.audit_events(limit=10) if e.id > before]
            readable = anonymous_read and ep.action == "view"
            if readable:
                if r.status_code != 200:
                    wrong.append(f"{ep.name}: {r.status_code}, anonymous_read should show it")
                continue
            if ep.side == "api" or ep.name in SSE:
                if r.status_code != 401:
                    wrong.append(f"{ep.name}: {r.status_code}, should be 401")
                elif ep.side == "api" and r.headers.get("www-authenticate") != "Bearer":
                    wrong.append(f"{ep.name}: 401 without WWW-Authenticate: Bearer")
            else:
                location = r.headers.get("location", "")
                if r.status_code != 303 or not location.startswith("/ui/login?next=%2Fui%2F"):
                    wrong.append(f"{ep.name}: {r.status_code} {location!r}, should go to sign-in")
            results = [(e.actor, e.details.get("result")) for e in new]
            if ep.action == "view":
                if results:
                    wrong.append(f"{ep.name}: a read refused was audited: {results}")
            elif results != [("anonymous", "unauthenticated")]:
                wrong.append(f"{ep.name}: audited {results}, should be one unauthenticated")
    assert wrong == []


def test_the_sign_in_page_is_asked_to_return_to_the_form_s_page(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, only=("deployer-production",))
    with rig.client() as client:
        r = client.post(
            "/ui/apps/web/envs/production/rollback",
            data={"revision": OLDER},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fapps%2Fweb%2Fenvs%2Fproduction"
        r = client.post("/ui/promotions/1/approve", data={"comment": "ok"}, follow_redirects=False)
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fpromotions"
