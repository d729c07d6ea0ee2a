"""Dashboard sign-in: argon2id hashes, session cookies (HttpOnly, SameSite=Strict, Secure
over TLS, expiring), the sign-in form's own CSRF token, throttling after 5 failures in
300 s per user and per address (audited, counted in /metrics), signing out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from gitswarm.api.passwords import Passwords
from gitswarm.api.sessions import COOKIE, LoginThrottle, digest
from tests.dashboard_rig import CHEAP, Rig, csrf_of, make_rig, password_of, sign_in


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, only=("viewer-all", "deployer-staging"))


@pytest.fixture
def client(rig: Rig) -> Iterator[Any]:
    with rig.client() as c:
        yield c


def cookie_header(r: Any, name: str) -> str:
    [header] = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return str(header)


def test_the_store_keeps_an_argon2id_hash_never_the_password(rig: Rig) -> None:
    user = rig.store.get_user("viewer-all")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    assert password_of("viewer-all") not in user.password_hash
    ok, _ = Passwords().verify(user.password_hash, password_of("viewer-all"))
    assert ok
    assert Passwords().verify(user.password_hash, "wrong") == (False, False)


def test_a_page_without_a_session_sends_the_browser_to_sign_in(client: Any) -> None:
    r = client.get("/ui/apps/web/envs/staging", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fapps%2Fweb%2Fenvs%2Fstaging"


def test_signing_in_sets_a_strict_httponly_expiring_cookie(rig: Rig, client: Any) -> None:
    r = sign_in(client, "viewer-all")
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    header = cookie_header(r, COOKIE)
    assert "HttpOnly" in header
    assert "SameSite=strict" in header
    assert f"Max-Age={rig.settings.session_ttl}" in header
    assert "Path=/ui" in header
    assert "Secure" not in header  # plain HTTP: a Secure cookie would never come back
    value = header.split(";")[0].split("=", 1)[1]
    session = rig.store.get_session(digest(value))
    assert session is not None and session.user == "viewer-all"
    assert value not in str(session)  # only its SHA-256 is kept
    assert client.get("/ui/").status_code == 200
    [event] = [e for e in rig.store.audit_events() if e.action == "login"]
    assert event.actor == "viewer-all"


@pytest.mark.parametrize("how", ["https", "forwarded"])
def test_the_cookie_is_secure_when_served_over_tls(rig: Rig, how: str) -> None:
    base = "https://testserver" if how == "https" else "http://testserver"
    headers = {"X-Forwarded-Proto": "https"} if how == "forwarded" else {}
    with rig.client(base_url=base) as c:
        r = sign_in(c, "viewer-all", **headers)
    assert r.status_code == 303
    assert "; Secure" in cookie_header(r, COOKIE)


def test_an_expired_session_is_signed_out(rig: Rig, client: Any) -> None:
    r = sign_in(client, "viewer-all")
    value = cookie_header(r, COOKIE).split(";")[0].split("=", 1)[1]
    rig.store.delete_session(digest(value))
    rig.store.create_session(digest(value), "viewer-all", "x" * 20, timedelta(seconds=-1))
    assert rig.store.get_session(digest(value)) is None
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_cookie_issued_before_the_clock_stepped_back_two_hours_is_refused(
    tmp_path: Path,
) -> None:
    clock = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    rig = make_rig(tmp_path, only=("viewer-all",), clock=lambda: clock[0])
    with rig.client() as c:
        sign_in(c, "viewer-all")
        assert c.get("/ui/", follow_redirects=False).status_code == 200
        clock[0] -= timedelta(hours=2)  # the captured cookie would live 2 h past its TTL
        r = c.get("/ui/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_signing_out_ends_the_session_in_the_store(rig: Rig, client: Any) -> None:
    sign_in(client, "viewer-all")
    page = client.get("/ui/")
    value = client.cookies.get(COOKIE)
    r = client.post("/ui/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert rig.store.get_session(digest(value)) is None
    client.cookies.set(COOKIE, value, path="/ui")  # a copied cookie is dead too
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_wrong_password_and_an_unknown_user_read_the_same(rig: Rig, client: Any) -> None:
    bad = sign_in(client, "viewer-all", "not the password")
    unknown = sign_in(client, "nobody-here", "not the password")
    assert bad.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in bad.text
    assert "Wrong user name or password." in unknown.text
    assert COOKIE not in bad.headers.get("set-cookie", "")
    actions = [(e.actor, e.action) for e in rig.store.audit_events()]
    assert ("viewer-all", "login-failed") in actions
    assert ("nobody-here", "login-failed") in actions


def test_the_sign_in_form_needs_its_own_token(rig: Rig, client: Any) -> None:
    r = client.post(
        "/ui/login",
        data={"username": "viewer-all", "password": password_of("viewer-all")},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "no valid security token" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert any(e.action == "csrf-refused" for e in rig.store.audit_events())


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui/", "/ui/\\evil", "/api/v1/status"]
)
def test_after_sign_in_the_browser_goes_to_the_dashboard_only(client: Any, target: str) -> None:
    form = client.get("/ui/login")
    r = client.post(
        "/ui/login",
        data={
            "csrf": csrf_of(form.text),
            "username": "viewer-all",
            "password": password_of("viewer-all"),
            "next": target,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/"


def test_five_failures_of_one_user_throttle_it_even_with_the_right_password(
    rig: Rig, client: Any
) -> None:
    for _ in range(5):
        assert sign_in(client, "deployer-staging", "wrong password").status_code == 401
    r = sign_in(client, "deployer-staging")
    assert r.status_code == 429
    assert "Too many failed sign-ins" in r.text
    assert 1 <= int(r.headers["retry-after"]) <= 300
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert sign_in(client, "viewer-all").status_code == 429  # same address: throttled too
    events = [(e.actor, e.action) for e in rig.store.audit_events(limit=None)]
    assert events.count(("deployer-staging", "login-failed")) == 5
    text = client.get("/metrics").text
    assert 'gitswarm_login_failures_total{reason="bad_credentials"} 5.0' in text
    assert 'gitswarm_login_failures_total{reason="throttled"} 2.0' in text
    # beyond 5 a minute from one address: one summary row (test_api_unauthenticated_flood)
    assert 'gitswarm_audit_summarized_total{action="login-throttled"} 2.0' in text


def test_the_throttle_is_per_user_and_per_address_and_forgets_after_the_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(5, 300, clock=lambda: now[0])
    for i in range(5):
        throttle.failed("alice", f"10.0.0.{i}")  # one user from five addresses
    assert throttle.retry_after("alice", "10.0.0.9") == pytest.approx(300)
    assert throttle.retry_after("bob", "10.0.0.9") == 0
    for i in range(5):
        throttle.failed(f"user{i}", "10.9.9.9")  # five users from one address
    assert throttle.retry_after("carol", "10.9.9.9") == pytest.approx(300)
    now[0] += 299
    assert throttle.retry_after("alice", "10.0.0.9") == pytest.approx(1)
    now[0] += 1
    assert throttle.retry_after("alice", "10.0.0.9") == 0
    assert throttle.retry_after("carol", "10.9.9.9") == 0


def test_the_throttle_stays_bounded_under_a_flood_of_names() -> None:
    throttle = LoginThrottle(5, 300, clock=lambda: 0.0, max_keys=100)
    for i in range(1000):
        throttle.failed(f"u{i}", f"a{i}")
    assert len(throttle._failures) <= 100


def test_a_long_password_is_refused_cheaply(client: Any) -> None:
    r = sign_in(client, "viewer-all", "x" * 5000)
    assert r.status_code == 401


def test_changing_the_password_ends_the_sessions(rig: Rig, client: Any) -> None:
    sign_in(client, "viewer-all")
    assert client.get("/ui/").status_code == 200
    rig.store.set_password("viewer-all", CHEAP.hash("a brand new password"))
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_removing_a_user_ends_its_sessions_and_keeps_tokens_of_others(
    rig: Rig, client: Any
) -> None:
    sign_in(client, "viewer-all")
    rig.store.remove_user("viewer-all")
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    assert rig.store.get_user("viewer-all") is None


class CountingHasher(PasswordHasher):
    hashed = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        CountingHasher.hashed += 1
        return super().hash(password, salt=salt)


def test_no_argon2_hash_is_made_before_the_first_sign_in() -> None:
    """The dummy hash a sign-in of no such user is checked against (so that it takes as
    long as a real one) is 64 MiB of argon2: made at start-up, it was the agent's peak
    RSS with or without dashboard users (bench/ issue 18). The first sign-in makes it,
    of a known user or not, so that no sign-in says by its time which one came first."""
    CountingHasher.hashed = 0
    passwords = Passwords(CountingHasher(time_cost=1, memory_cost=8, parallelism=1))
    assert CountingHasher.hashed == 0
    real = passwords.hash("a good password")
    assert CountingHasher.hashed == 1
    assert passwords.verify(real, "a good password")[0] is True
    assert CountingHasher.hashed == 2  # the dummy, at the first sign-in (a known user)
    assert passwords.verify(None, "a good password") == (False, False)
    assert passwords.verify(None, "another") == (False, False)
    assert CountingHasher.hashed == 2
