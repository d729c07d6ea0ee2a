"""Sessions, API tokens and pending promotions under a step of the wall clock, on SQLite
and on the real PostgreSQL: dated by the store's shared clock (the server's on
PostgreSQL, as leases are), and over when dated in the future (model/instant.py
``CLOCK_SKEW``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitswarm.model.account import RoleBinding
from gitswarm.model.instant import dated_in_the_future
from gitswarm.store import Store

TOKEN = "h" * 64
CLOSE = timedelta(seconds=60)  # this host and the private PostgreSQL share one clock


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _promotion(store: Store) -> datetime:
    return store.create_promotion(
        "web", "staging", "prod", images={"shop/web": "1.2"}, requested_by="carol"
    ).created_at


def test_a_cookie_issued_before_the_clock_stepped_back_two_hours_is_refused(
    store_url: str,
) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        store.add_user("fay", "argon2-hash", [])
        session = store.create_session(TOKEN, "fay", "c" * 20, timedelta(hours=1))
        assert session.expires_at == clock.now + timedelta(hours=1)
        clock.now -= timedelta(seconds=4)  # within the allowed skew
        assert store.get_session(TOKEN) is not None
        clock.now -= timedelta(hours=2)  # it would live 3 h of a 1 h TTL
        assert store.get_session(TOKEN) is None


def test_a_pending_promotion_created_in_the_future_reads_as_such(store_url: str) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        created = _promotion(store)
        assert created == clock.now
        clock.now -= timedelta(hours=2)
        assert store.shared_now() == clock.now
        assert dated_in_the_future(created, store.shared_now())


def _token(store: Store, digest: str, ttl: timedelta | None) -> datetime | None:
    return store.add_token(
        digest, "ci", (RoleBinding("viewer"),), created_by="test", ttl=ttl
    ).expires_at


def test_a_token_created_before_the_clock_stepped_back_two_hours_is_refused(
    store_url: str,
) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        assert _token(store, TOKEN, timedelta(hours=1)) == clock.now + timedelta(hours=1)
        assert _token(store, "n" * 64, None) is None  # until revoked
        clock.now -= timedelta(seconds=4)  # within the allowed skew
        assert store.get_token(TOKEN) is not None
        clock.now -= timedelta(hours=2)  # it would live 3 h of a 1 h TTL
        assert store.get_token(TOKEN) is None
        assert store.get_token("n" * 64) is not None  # no TTL to outlive
        clock.now += timedelta(hours=3, seconds=5)  # and once over, over for good
        assert store.get_token(TOKEN) is None


# PostgreSQL only: on SQLite (one host) the host's clock is the store's
ON_POSTGRESQL = pytest.mark.parametrize(
    "store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@ON_POSTGRESQL
def test_on_postgresql_sessions_follow_the_servers_clock_not_a_skewed_hosts(
    store_url: str,
) -> None:
    ahead = ManualClock(datetime.now(UTC) + timedelta(hours=2))
    with Store(store_url, clock=ahead) as store:  # a host 2 h ahead signs someone in
        store.add_user("fay", "argon2-hash", [])
        session = store.create_session(TOKEN, "fay", "c" * 20, timedelta(hours=1))
        assert abs(session.created_at - datetime.now(UTC)) < CLOSE
        assert abs(session.expires_at - (datetime.now(UTC) + timedelta(hours=1))) < CLOSE
        store.create_session("e" * 64, "fay", "c" * 20, timedelta(seconds=-1))
    behind = ManualClock(datetime.now(UTC) - timedelta(hours=3))
    with Store(store_url, clock=behind) as store:  # another agent, 3 h behind, reads
        assert store.get_session(TOKEN) is not None  # the server says: alive
        assert store.get_session("e" * 64) is None  # the server says: over


@ON_POSTGRESQL
def test_on_postgresql_pending_promotions_follow_the_servers_clock(store_url: str) -> None:
    ahead = ManualClock(datetime.now(UTC) + timedelta(hours=2))
    with Store(store_url, clock=ahead) as store:
        created = _promotion(store)
        assert abs(created - datetime.now(UTC)) < CLOSE
        assert abs(store.shared_now() - datetime.now(UTC)) < CLOSE
    behind = ManualClock(datetime.now(UTC) - timedelta(hours=3))
    with Store(store_url, clock=behind) as store:
        assert abs(store.shared_now() - datetime.now(UTC)) < CLOSE
        assert not dated_in_the_future(created, store.shared_now())


@ON_POSTGRESQL
def test_on_postgresql_tokens_follow_the_servers_clock_not_a_skewed_hosts(
    store_url: str,
) -> None:
    ahead = ManualClock(datetime.now(UTC) + timedelta(hours=2))
    with Store(store_url, clock=ahead) as store:  # a host 2 h ahead creates tokens
        store.add_user("ci", "argon2-hash", [])
        expires = _token(store, TOKEN, timedelta(hours=1))
        assert expires is not None  # no longer than its TTL from the server's now
        assert abs(expires - (datetime.now(UTC) + timedelta(hours=1))) < CLOSE
        [created] = [t.created_at for t in store.list_tokens()]
        assert abs(created - datetime.now(UTC)) < CLOSE
        _token(store, "e" * 64, timedelta(seconds=-1))  # expired at once
    behind = ManualClock(datetime.now(UTC) - timedelta(hours=3))
    with Store(store_url, clock=behind) as store:  # another agent, 3 h behind, checks
        assert store.get_token(TOKEN) is not None  # the server says: alive
        assert store.get_token("e" * 64) is None  # the server says: over
