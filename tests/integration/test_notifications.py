"""notify/: real Apprise delivery to a local HTTP receiver; failures never block or raise."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from gitswarm.model.events import Event
from gitswarm.notify import Notifier
from tests.receiver import Receiver


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def event(kind: str = "sync_failed") -> Event:
    return Event(kind, "shop", "prod", "abc123", "health check failed", "HealthTimeout")  # type: ignore[arg-type]


def test_an_event_reaches_its_route(receiver: Receiver) -> None:
    notifier = Notifier({"sync_failed": [receiver.url]})
    notifier.send(event())
    notifier.send(event("sync_succeeded"))  # no route: not sent
    notifier.flush()
    (body,) = receiver.wait_for(1)
    assert "shop/prod sync failed" in body["title"]
    assert "HealthTimeout" in body["message"]
    notifier.close()


def test_wildcard_route_gets_every_kind(receiver: Receiver) -> None:
    notifier = Notifier({"*": [receiver.url]})
    notifier.send(event("drift_detected"))
    notifier.flush()
    assert len(receiver.wait_for(1)) == 1
    notifier.close()


def test_a_dead_target_is_counted_not_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = Notifier({"*": [f"json://127.0.0.1:{port}/x"]})
    assert notifier.deliver(event()) is False
    assert notifier.failed == 1
    notifier.close()


def test_a_slow_target_does_not_block_the_sender() -> None:
    slow = Receiver(delay=2.0)
    try:
        notifier = Notifier({"*": [slow.url]})
        started = time.monotonic()
        notifier.send(event())
        assert time.monotonic() - started < 0.5
        notifier.close(timeout=10)
        assert len(slow.received) == 1
    finally:
        slow.close()
