"""Requests without valid credentials cannot flood the store (issue 15, SPEC.md section 6):
per address and window the audit trail keeps the first few rows and one summary row for
the rest (api/refusals.py), /metrics counts every one, the sign-in throttle works as
before, and rows of callers somebody signed in as are written as before. What an
attacker can vary is tried too: the address (spoofed X-Forwarded-For, through the real
uvicorn server), the path, the body's size, a captured webhook delivery sent again.
Nor the agent's log: webhooks that prove nothing, and malformed requests to the real
server, are logged a few times a window and then summed up in one line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitswarm.api import ApiSettings, create_app
from gitswarm.api.refusals import OTHERS, SUMMARY, BoundedAudit
from gitswarm.api.server import serve_in_thread
from gitswarm.api.settings import Grant, WebhookSecrets, hash_token
from gitswarm.api.webhooks import sign_generic
from gitswarm.model.account import RoleBinding
from gitswarm.model.operation import AuditEvent
from gitswarm.reconcile.metrics import Metrics
from gitswarm.store import Store
from tests.dashboard_rig import CHEAP
from tests.fake_agent import FakeAgent, client_for

NOW = 1_800_000_000.0
SYNC = "/api/v1/apps/web/envs/development/sync"
DEPLOYER = "gst_deployer_of_development"
VIEWER = "gst_viewer_of_everything"
SECRET = "webhook-secret-of-the-test"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "state.db")) as opened:
        yield opened


def _settings(store: Store, clock: Clock, **kw: Any) -> ApiSettings:
    tokens = {
        hash_token(DEPLOYER): Grant("ci", frozenset({"deployer"}), frozenset({"development"})),
        hash_token(VIEWER): Grant("eve", frozenset({"viewer"}), frozenset({"*"})),
    }
    return ApiSettings(audit=store.audit, accounts=store, tokens=tokens, clock=clock, **kw)


def _rows(store: Store) -> list[AuditEvent]:
    return list(reversed(store.audit_events(limit=None)))


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def _post(
    app: Any,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    hang_up: bool = False,
) -> int:
    """One POST straight into the ASGI app (no client library: 10,000 of them are the
    point here, not the client's speed), from 198.51.100.7."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"agent"), *headers],
        "client": ("198.51.100.7", 40000), "server": ("agent", 8080),
    }  # fmt: skip
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        if hang_up:  # the client went away before its body came
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0] if status else 0


def test_ten_thousand_unauthenticated_posts_from_one_address_leave_six_rows_and_count_all(
    store: Store,
) -> None:
    metrics, clock = Metrics(), Clock()
    app = create_app(FakeAgent(), _settings(store, clock), metrics)
    guess = [(b"authorization", b"Bearer gst_guess")]

    async def flood() -> list[int]:
        codes: list[int] = []
        async with app.router.lifespan_context(app):  # as uvicorn runs it: start, stop
            for _batch in range(200):
                codes += await asyncio.gather(
                    *(_post(app, SYNC, guess if i % 2 else []) for i in range(50))
                )
            assert len(_rows(store)) == 5  # the summary waits for the window's end
        return codes

    assert asyncio.run(flood()) == [401] * 10_000
    assert _sample(metrics, "gitswarm_api_refused_requests_total", code="401") == 10_000
    rows = _rows(store)
    assert [(r.actor, r.action, r.details["result"]) for r in rows[:5]] == [
        ("anonymous", "sync", "unauthenticated")
    ] * 5
    assert {r.details["address"] for r in rows[:5]} == {"198.51.100.7"}
    [summary] = rows[5:]  # written when the server stopped, for the open window
    assert (summary.actor, summary.action) == ("anonymous", SUMMARY)
    assert summary.details["message"] == (
        "9995 more unauthenticated requests from 198.51.100.7 in 0 s"
    )
    assert summary.details["count"] == 9995 and summary.details["actions"] == {"sync": 9995}
    assert _sample(metrics, "gitswarm_audit_summarized_total", action="sync") == 9995


def test_a_window_that_ends_is_summed_up_and_the_next_one_audits_again(store: Store) -> None:
    metrics, clock = Metrics(), Clock()
    with client_for(create_app(FakeAgent(), _settings(store, clock), metrics)) as c:
        for _ in range(8):
            c.post(SYNC)
        clock.now += 61
        c.post(SYNC)  # the next request writes the summary of the window before it
        rows = _rows(store)
    assert [r.action for r in rows] == ["sync"] * 5 + [SUMMARY, "sync"]
    assert rows[5].details["message"] == "3 more unauthenticated requests from testclient in 60 s"


def test_the_apps_ticker_writes_a_summary_once_its_window_has_ended(store: Store) -> None:
    clock = Clock()
    with client_for(create_app(FakeAgent(), _settings(store, clock), Metrics())) as c:
        for _ in range(7):
            c.post(SYNC)
        clock.now += 60
        for _ in range(50):  # the ticker looks once a second
            if any(r.action == SUMMARY for r in _rows(store)):
                break
            c.portal.call(_sleep, 0.1)
        rows = _rows(store)
    assert [r.action for r in rows] == ["sync"] * 5 + [SUMMARY]
    assert rows[5].details["count"] == 2


async def _sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


def test_spoofed_forwarded_addresses_through_the_real_server_stay_bounded(store: Store) -> None:
    """uvicorn takes X-Forwarded-For from 127.0.0.1 (its trusted proxy by default): one
    client can claim any number of addresses; beyond the 20th they share one row."""
    metrics, clock = Metrics(), Clock()
    app = create_app(FakeAgent(), _settings(store, clock), metrics)
    with serve_in_thread(app, port=0) as server, httpx.Client(base_url=server.url) as c:
        for i in range(300):
            spoofed = {"X-Forwarded-For": f"203.0.{i // 250}.{i % 250 + 1}"}
            assert c.post(SYNC, headers=spoofed).status_code == 401
    rows = _rows(store)
    assert len(rows) == 21
    assert [r.details["address"] for r in rows[:20]] == [f"203.0.0.{i}" for i in range(1, 21)]
    assert rows[20].details["address"] == OTHERS
    assert rows[20].details["message"] == (
        "280 more unauthenticated requests from other addresses in 0 s"
    )
    assert _sample(metrics, "gitswarm_api_refused_requests_total", code="401") == 300


def test_a_hundred_thousand_addresses_keep_twenty_tallies_and_twenty_one_rows() -> None:
    written: list[tuple[str, str, str, dict[str, Any]]] = []
    budget = BoundedAudit(
        lambda *row: written.append((row[0], row[1], row[2], dict(row[3]))), Metrics(), Clock()
    )
    for i in range(100_000):
        address = f"2001:db8::{i:x}"
        budget("anonymous", "sync", "/x", {"result": "unauthenticated", "address": address})
    assert budget.tracked == 20 and len(written) == 20
    budget.flush(final=True)
    assert len(written) == 21 and written[-1][3]["count"] == 99_980
    assert budget.tracked == 0


def test_a_huge_body_without_credentials_is_not_read_and_not_audited(store: Store) -> None:
    clock = Clock()
    with client_for(create_app(FakeAgent(), _settings(store, clock), Metrics())) as c:
        r = c.post(SYNC, content=b"x" * (8 * 1024 * 1024))
        assert r.status_code == 401
        long_path = "/api/v1/apps/" + "a" * 5000 + "/envs/development/sync"
        assert c.post(long_path).status_code == 401
    rows = _rows(store)
    assert len(rows) == 2
    assert all(len(json.dumps(r.details)) < 200 and len(r.target) <= 200 for r in rows)


def test_rows_of_callers_with_credentials_are_all_written(store: Store) -> None:
    clock = Clock()
    metrics = Metrics()
    with client_for(create_app(FakeAgent(), _settings(store, clock), metrics)) as c:
        for _ in range(30):
            c.post(SYNC)  # nobody: budgeted
            ok = c.post(SYNC, headers={"Authorization": f"Bearer {DEPLOYER}"})
            assert ok.status_code == 202
            prod = "/api/v1/apps/web/envs/production/sync"
            refused = c.post(prod, headers={"Authorization": f"Bearer {VIEWER}"})
            assert refused.status_code == 403
    rows = _rows(store)
    results = [(r.actor, r.details.get("result")) for r in rows if r.action == "sync"]
    assert results.count(("ci", "requested")) == 30
    assert results.count(("eve", "forbidden")) == 30
    assert results.count(("anonymous", "unauthenticated")) == 5
    assert [r.details["count"] for r in rows if r.action == SUMMARY] == [25]


def test_a_captured_webhook_delivery_sent_again_and_again_stays_bounded(store: Store) -> None:
    clock = Clock()
    settings = _settings(store, clock, webhooks=WebhookSecrets(generic=(SECRET,)))
    metrics = Metrics()
    body = b'{"ref": "refs/heads/main", "after": "' + b"c" * 40 + b'"}'
    headers = {"X-Gitswarm-Signature": sign_generic(SECRET, body, int(NOW))}
    with client_for(create_app(FakeAgent(), settings, metrics)) as c:
        for _ in range(100):
            assert c.post("/webhooks/generic", content=body, headers=headers).status_code < 300
    rows = _rows(store)
    assert [r.action for r in rows] == ["sync"] + ["webhook-replay-refused"] * 5 + [SUMMARY]
    assert rows[-1].details["actions"] == {"webhook-replay-refused": 94}
    assert _sample(metrics, "gitswarm_webhook_requests_total", provider="generic",
                   result="replayed") == 99  # fmt: skip


# --- the agent's log ------------------------------------------------------------------


def _webhook_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gitswarm.api.webhooks"]


def test_ten_thousand_bad_signature_webhooks_from_one_address_write_six_log_lines(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """One WARNING line per request was 10,000 lines: now the first 5, one summary line
    when the window ends, and a signed delivery after them is logged and accepted."""
    caplog.set_level(logging.INFO, logger="gitswarm.api")
    metrics, clock = Metrics(), Clock()
    settings = _settings(store, clock, webhooks=WebhookSecrets(generic=(SECRET,)))
    app = create_app(FakeAgent(), settings, metrics)
    body = b'{"ref": "refs/heads/main", "after": "' + b"c" * 40 + b'"}'
    forged = [(b"x-gitswarm-signature", f"t={int(NOW)},v1={'0' * 64}".encode())]
    good = [(b"x-gitswarm-signature", sign_generic(SECRET, body, int(NOW)).encode())]

    async def flood() -> tuple[list[int], int, list[str]]:
        codes: list[int] = []
        async with app.router.lifespan_context(app):
            for _batch in range(200):
                codes += await asyncio.gather(
                    *(_post(app, "/webhooks/generic", forged, body) for _ in range(50))
                )
            during = _webhook_lines(caplog)
            accepted = await _post(app, "/webhooks/generic", good, body)
        return codes, accepted, during

    codes, accepted, during = asyncio.run(flood())
    assert codes == [401] * 10_000 and accepted == 202
    unauthorized = "webhook generic from 198.51.100.7: unauthorized (delivery -)"
    assert during == [unauthorized] * 5
    assert _webhook_lines(caplog)[5:] == [
        "webhook generic from 198.51.100.7: accepted (delivery -)",  # signed: always logged
        "9995 more unauthenticated requests from 198.51.100.7 in 0 s not logged "
        "(webhook generic unauthorized: 9995)",  # the open window, when the app stopped
    ]
    assert [r.levelname for r in caplog.records if r.name == "gitswarm.api.webhooks"] == (
        ["WARNING"] * 5 + ["INFO", "WARNING"]
    )
    assert _sample(metrics, "gitswarm_webhook_requests_total", provider="generic",
                   result="unauthorized") == 10_000  # fmt: skip
    assert SECRET not in caplog.text and "0" * 64 not in caplog.text


def test_the_next_window_logs_again_after_a_summary_of_the_one_before(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Per address, and a replayed delivery (signed, but captured) counts as proving
    nothing too."""
    caplog.set_level(logging.INFO, logger="gitswarm.api")
    clock = Clock()
    settings = _settings(store, clock, webhooks=WebhookSecrets(generic=(SECRET,)))
    body = b'{"ref": "refs/heads/main", "after": "' + b"c" * 40 + b'"}'
    signed = {"X-Gitswarm-Signature": sign_generic(SECRET, body, int(NOW))}
    forged = {"X-Gitswarm-Signature": f"t={int(NOW)},v1={'0' * 64}"}
    with client_for(create_app(FakeAgent(), settings, Metrics())) as c:
        assert c.post("/webhooks/generic", content=body, headers=signed).status_code == 202
        for _ in range(4):
            assert c.post("/webhooks/generic", content=body, headers=signed).status_code == 200
        for _ in range(4):
            assert c.post("/webhooks/generic", content=body, headers=forged).status_code == 401
        clock.now += 60
        assert c.post("/webhooks/generic", content=body, headers=forged).status_code == 401
        lines = _webhook_lines(caplog)
    assert lines == [
        "webhook generic from testclient: accepted (delivery -)",
        *["webhook generic from testclient: replayed (delivery -)"] * 4,
        "webhook generic from testclient: unauthorized (delivery -)",
        "3 more unauthenticated requests from testclient in 60 s not logged "
        "(webhook generic unauthorized: 3)",
        "webhook generic from testclient: unauthorized (delivery -)",
    ]


# --- the sign-in ----------------------------------------------------------------------


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _try(c: Any, user: str, password: str) -> int:
    form = c.get("/ui/login")
    match = CSRF.search(form.text)
    assert match
    data = {"csrf": match.group(1), "username": user, "password": password, "next": "/ui/"}
    return int(c.post("/ui/login", data=data, follow_redirects=False).status_code)


def test_a_hundred_failed_sign_ins_are_throttled_after_five_counted_and_bounded(
    store: Store,
) -> None:
    store.add_user("ada", CHEAP.hash("the-right-password"), [RoleBinding("viewer")])
    metrics, clock = Metrics(), Clock()
    app = create_app(FakeAgent(), _settings(store, clock), metrics)
    with client_for(app) as c:
        codes = [_try(c, "ada", f"guess-{i}") for i in range(100)]
        assert _try(c, "ada", "the-right-password") == 429  # throttled even so
        for _ in range(30):  # the sign-in form without its token
            c.cookies.clear()
            c.post("/ui/login", data={"username": "ada", "password": "x"})
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert _sample(metrics, "gitswarm_login_failures_total", reason="bad_credentials") == 5
    assert _sample(metrics, "gitswarm_login_failures_total", reason="throttled") == 96
    rows = _rows(store)
    assert [r.action for r in rows] == ["login-failed"] * 5 + [SUMMARY]
    assert rows[-1].details["actions"] == {"csrf-refused": 30, "login-throttled": 96}


def test_signing_in_still_works_and_is_audited_after_someone_elses_flood(store: Store) -> None:
    store.add_user("ada", CHEAP.hash("the-right-password"), [RoleBinding("viewer")])
    store.add_user("bob", CHEAP.hash("bobs-password-here"), [RoleBinding("viewer")])
    clock = Clock()
    with client_for(create_app(FakeAgent(), _settings(store, clock), Metrics())) as c:
        for _ in range(40):
            c.post(SYNC)
        assert _try(c, "ada", "the-right-password") == 303
    actions = [(r.actor, r.action) for r in _rows(store)]
    assert ("ada", "login") in actions


def test_the_rows_per_address_are_a_setting(store: Store) -> None:
    clock = Clock()
    settings = _settings(store, clock, unauthenticated_audit_rows=2)
    with client_for(create_app(FakeAgent(), settings, Metrics())) as c:
        for _ in range(6):
            c.post(SYNC)
    assert [r.action for r in _rows(store)] == ["sync", "sync", SUMMARY]


def test_a_thousand_clients_that_hang_up_mid_request_write_six_log_lines(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Anybody can send a body's headers and go away: one INFO line each was a line per
    request of any path that reads a body."""
    caplog.set_level(logging.INFO, logger="gitswarm.api")
    app = create_app(FakeAgent(), _settings(store, Clock()), Metrics())
    form = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"9")]

    async def flood() -> list[int]:
        async with app.router.lifespan_context(app):
            return list(
                await asyncio.gather(
                    *(_post(app, "/ui/login", form, hang_up=True) for _ in range(1000))
                )
            )

    assert asyncio.run(flood()) == [0] * 1000  # nobody left to answer
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert lines == ["POST /ui/login: the client disconnected"] * 5 + [
        "995 more unauthenticated requests from 198.51.100.7 in 0 s not logged "
        "(client disconnected: 995)"
    ]


def test_malformed_requests_through_the_real_server_write_five_warnings_and_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn wrote "Invalid HTTP request received." at WARNING for every malformed
    request anybody sends; the line names no address, so all connections share one
    budget. A well-formed request still gets through, and the filter leaves with the
    server."""
    caplog.set_level(logging.INFO)
    app = create_app(FakeAgent(), ApiSettings(), Metrics())
    with serve_in_thread(app, port=0) as server:
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", server.port)) as conn:
                conn.sendall(b"NOT HTTP \x00\x01\r\n\r\n")
                conn.recv(1000)  # uvicorn's 400, then it closes
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "uvicorn.error" and r.levelno >= logging.WARNING
    ]
    assert warned == ["Invalid HTTP request received."] * 5
    [summary] = [r.getMessage() for r in caplog.records if "not logged" in r.getMessage()]
    assert re.fullmatch(
        r"195 more warnings of the HTTP server about connections in \d+ s not logged "
        r"\('Invalid HTTP request received.': 195\)",
        summary,
    )
    assert logging.getLogger("uvicorn.error").filters == []
