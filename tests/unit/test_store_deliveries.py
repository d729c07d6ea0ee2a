"""Webhook deliveries in the state store: a repeat is refused, across restarts and racing
requests, on SQLite and PostgreSQL; a released claim is new again; old keys are pruned."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gitswarm.store import Store, resolve_url
from gitswarm.store.deliveries import KEEP_DELIVERIES


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _rows(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(resolve_url(url))
    try:
        with engine.connect() as conn:
            query = "SELECT provider, key FROM webhook_deliveries ORDER BY provider, key"
            return [(row[0], row[1]) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_a_delivery_is_new_once_and_a_repeat_of_any_key_is_not(store: Store) -> None:
    assert store.claim_webhook_delivery("github", ["id:1", "body:a"])
    assert not store.claim_webhook_delivery("github", ["id:1", "body:a"])
    assert not store.claim_webhook_delivery("github", ["id:2", "body:a"])  # a new id, same body
    assert not store.claim_webhook_delivery("github", ["id:1", "body:b"])
    assert store.claim_webhook_delivery("gitea", ["id:1", "body:a"])  # keys are per provider
    assert store.claim_webhook_delivery("github", ["id:3", "body:c"])


def test_a_released_claim_is_new_again(store: Store) -> None:
    assert store.claim_webhook_delivery("gitlab", ["id:x", "body:y"])
    store.release_webhook_delivery("gitlab", ["id:x", "body:y"])
    assert store.claim_webhook_delivery("gitlab", ["id:x", "body:y"])


def test_deliveries_survive_a_restart(store_url: str) -> None:
    with Store(store_url) as store:
        assert store.claim_webhook_delivery("generic", ["signed:abc"])
    with Store(store_url) as store:
        assert not store.claim_webhook_delivery("generic", ["signed:abc"])


def test_keys_older_than_a_week_are_pruned(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock) as store:
        assert store.claim_webhook_delivery("github", ["id:old", "body:old"])
        clock.now += KEEP_DELIVERIES - timedelta(minutes=1)
        assert not store.claim_webhook_delivery("github", ["id:old"])  # still remembered
        assert store.claim_webhook_delivery("github", ["id:new"])
        clock.now += timedelta(minutes=2)
        assert store.claim_webhook_delivery("github", ["id:newer"])  # this claim prunes
        assert _rows(store_url) == [("github", "id:new"), ("github", "id:newer")]
        assert store.claim_webhook_delivery("github", ["id:old"])  # forgotten: new again


def test_of_racing_claims_of_one_delivery_exactly_one_wins(store: Store) -> None:
    start = threading.Barrier(8)

    def claim(_: int) -> bool:
        start.wait()
        return store.claim_webhook_delivery("github", ["id:race", "body:race"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1
