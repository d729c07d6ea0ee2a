"""Every endpoint × role × environment, for the JSON API (store tokens) and the
dashboard (signed-in users) alike: what one role may do in one environment is allowed
on both sides, what it may not is 403 and audited, and a page shows a button exactly
when its endpoint would take the request.

The expectation is written out here from SPEC.md section 6 and issue 15, not computed
with access.py, so a change to the one decision shows up as a change of this table.
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

# What each role may do, in the environments it is granted (SPEC.md section 6).
MAY: dict[str, set[str]] = {
    "viewer": {"view"},
    "deployer": {"view", "sync", "rollback"},
    "approver": {"view", "approve"},
    "admin": {"view", "sync", "rollback", "override-window", "approve"},
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


def api(method: str, path: str, body: dict[str, Any] | None = None) -> Callable[..., Any]:
    def go(client: Any, env: str, token: str) -> Any:
        url = path.format(env=env, op=_op_id(env))
        headers = {"Authorization": f"Bearer {token}"}
        if method == "GET":
            return client.get(url, headers=headers)
        content = json.dumps(body).encode() if body else b""
        return client.post(url, headers=headers, content=content)

    return go


def page_get(path: str) -> Callable[..., Any]:
    def go(client: Any, env: str, csrf: str) -> Any:
        return client.get(path.format(env=env, op=_op_id(env)), follow_redirects=False)

    return go


def page_post(path: str, fields: dict[str, str]) -> Callable[..., Any]:
    def go(client: Any, env: str, csrf: str) -> Any:
        return client.post(
            path.format(env=env), data={"csrf": csrf, **fields}, follow_redirects=False
        )

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
                elif ep.name.startswith("POST") and r.status_code not in (202, 303):
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
