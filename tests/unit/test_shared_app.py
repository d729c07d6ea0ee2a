"""tests/shared_app.py: one app per module, and still nothing shared between tests."""

from __future__ import annotations

import pytest

from gitswarm.api import ApiSettings
from tests.fake_agent import FakeAgent, client_for
from tests.shared_app import Seat, shared_app


def test_each_binding_sees_only_its_own_objects() -> None:
    shared = shared_app(ApiSettings(anonymous_read=True))
    seen = []
    for _ in range(2):
        agent = FakeAgent()
        with shared.bound(agent=agent) as app, client_for(app) as client:
            assert client.get("/api/v1/status").status_code == 200
            text = client.get("/metrics").text
            seen.append((shared.seats["agent"]._now() is agent, text.count("\n")))
    assert [same for same, _ in seen] == [True, True]
    assert seen[0][1] == seen[1][1]  # fresh metrics each time: the same text, not more


def test_an_empty_seat_refuses_every_read() -> None:
    seat = Seat("agent")
    with pytest.raises(AssertionError, match="the shared app read its agent outside a test"):
        _ = seat.status
    shared = shared_app(ApiSettings(anonymous_read=True))
    with pytest.raises(AssertionError, match="outside a test"):
        shared.seats["metrics"].registry  # noqa: B018  after a test, nothing is seated


def test_the_audit_budget_of_one_binding_never_reaches_the_next() -> None:
    """The app's one piece of state without accounts (api/refusals.py): each binding's
    end closes its window, so its summary lands in its own sink, and the next binding
    audits its first requests without credentials one by one again."""
    shared = shared_app(ApiSettings(clock=lambda: 1_800_000_000.0))
    sinks: list[list[str]] = []
    for posts in (8, 3):
        rows: list[str] = []
        with shared.bound(
            agent=FakeAgent(), audit=lambda *row, rows=rows: rows.append(row[1])
        ) as app:
            client = client_for(app)  # no lifespan: the binding's end must close it
            for _ in range(posts):
                assert client.post("/api/v1/apps/web/envs/dev/sync").status_code == 401
        sinks.append(rows)
    assert sinks == [["sync"] * 5 + ["unauthenticated-summary"], ["sync"] * 3]
