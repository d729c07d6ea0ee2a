"""The dashboard in-process for unit tests: a real SQLite state store (users, sessions,
tokens, audit), the FakeAgent and FakePromotions, one user and one store token per
role × environment, one pending promotion into each environment and one hold in each
(requested and made by ``REQUESTER``, who is none of them), and helpers to sign in
and to fish the CSRF token out of a page.

Passwords are hashed with a cheap argon2id (argon2 verifies with the parameters kept in
the hash), so signing in twenty users costs milliseconds, not seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from gitswarm.api import ApiSettings, create_app, hash_token
from gitswarm.api.passwords import Passwords
from gitswarm.model.account import RoleBinding
from gitswarm.reconcile.metrics import Metrics
from gitswarm.store import Store
from tests.fake_agent import ENVS, FakeAgent, client_for
from tests.fake_promotions import IMAGE, SOURCE, FakePromotions

ROLES = ("viewer", "deployer", "approver", "admin")
OLDER = "b" * 40  # what FakeAgent's history ran healthy before the deployed "a" * 40
REQUESTER = "requester"
CHEAP = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def password_of(user: str) -> str:
    return f"pw-of-{user}-long-enough"


def token_of(user: str) -> str:
    return f"gst_test_token_of_{user}"


def user_name(role: str, env: str) -> str:
    return f"{role}-{env}" if env != "*" else f"{role}-all"


@dataclass
class Rig:
    store: Store
    agent: FakeAgent
    metrics: Metrics
    settings: ApiSettings
    app: Any
    promotions: FakePromotions
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (role, env)
    pending: dict[str, int] = field(default_factory=dict)  # env -> the promotion into it
    holds: dict[str, int] = field(default_factory=dict)  # env -> a hold after a rollback

    def client(self, **kwargs: Any) -> Any:
        return client_for(self.app, **kwargs)


def make_rig(
    tmp_path: Path,
    only: tuple[str, ...] | None = None,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> Rig:
    """``only``: just these users (e.g. "viewer-all"); default: every role × env.
    ``clock``: the store's clock (sessions are dated by it), moved by the test."""
    store = Store(str(tmp_path / "state.db"), **({"clock": clock} if clock else {}))
    agent = FakeAgent()
    for op in agent.operations.values():  # each a healthy sync of an older revision
        op.update(
            revision=OLDER,
            author="Ada <ada@example.org>",
            trigger="poll",
            actor=None,
            started_at="2026-11-30T10:00:00+00:00",
            finished_at="2026-11-30T10:00:05+00:00",
            dry_run=False,
            changes=[],
        )
    metrics = Metrics()
    api = ApiSettings(audit=store.audit, accounts=store, **settings)
    promotions = FakePromotions(store)
    app = create_app(agent, api, metrics, promotions=promotions, records=store)
    rig = Rig(store, agent, metrics, api, app, promotions)
    for env in ENVS:
        promo = store.create_promotion(
            "web", SOURCE[env], env, images={IMAGE: "1.1.0"}, requested_by=REQUESTER
        )
        rig.pending[env] = promo.id
        hold, _ = store.create_hold("web", env, reason="rolled back", created_by=REQUESTER)
        rig.holds[env] = hold.id
    for role in ROLES:
        for env in (*ENVS, "*"):
            name = user_name(role, env)
            if only is not None and name not in only:
                continue
            binding = (RoleBinding(role, (env,)),)
            store.add_user(name, CHEAP.hash(password_of(name)), binding)
            store.add_token(hash_token(token_of(name)), name, binding, created_by="test")
            rig.users[name] = (role, env)
    return rig


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: Any, user: str, password: str | None = None, **headers: str) -> Any:
    """Open the sign-in form and post it like a browser; returns the answer."""
    form = client.get("/ui/login")
    assert form.status_code == 200
    return client.post(
        "/ui/login",
        data={
            "csrf": csrf_of(form.text),
            "username": user,
            "password": password if password is not None else password_of(user),
            "next": "/ui/",
        },
        headers=headers,
        follow_redirects=False,
    )


def signed_in(rig: Rig, user: str) -> Iterator[Any]:
    with rig.client() as client:
        r = sign_in(client, user)
        assert r.status_code == 303, r.text
        yield client
