"""The writers of one process take a SQLite store's write lock in the order they came.

SQLite's own busy handler polls with sleeps of up to 100 ms: among the threads of one
agent, the one that just committed tends to take the lock again at once, and a waiter can
starve. In CI one webhook of a burst of 100 (each claims its delivery and is audited while
the agent writes its records) went unanswered for over 30 s."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gitswarm.errors import StoreError
from gitswarm.store.db import _FairLock
from gitswarm.store.store import Store


def test_a_waiting_writer_gets_the_store_before_a_busy_writer_takes_it_many_more_times(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "state.db"))
    try:
        stop = threading.Event()
        turns = 0
        busy_started = threading.Event()

        def busy() -> None:
            nonlocal turns
            while not stop.is_set():
                store.audit("agent", "busy", "app/env")
                turns += 1
                busy_started.set()

        hot = [threading.Thread(target=busy) for _ in range(2)]
        for thread in hot:
            thread.start()
        try:
            busy_started.wait(10)
            waits = []
            for n in range(20):
                before = turns
                assert store.claim_webhook_delivery("github", [f"delivery-{n}"])
                waits.append(turns - before)
        finally:
            stop.set()
            for thread in hot:
                thread.join()
        # In turn: each busy writer at most once or twice ahead of the one that waits
        # (without the queue: dozens to hundreds of turns for one claim).
        assert max(waits) <= 6, waits
    finally:
        store.close()


def test_the_lock_is_handed_over_in_arrival_order_and_is_reentrant() -> None:
    lock = _FairLock()
    assert lock.acquire(timeout=1)
    assert lock.acquire(timeout=1)  # the same thread again: no deadlock
    order: list[int] = []
    queued = []

    def waiter(n: int) -> None:
        assert lock.acquire(timeout=10)
        order.append(n)
        lock.release()

    threads = []
    for n in range(5):
        thread = threading.Thread(target=waiter, args=(n,))
        thread.start()
        threads.append(thread)
        while len(lock._waiters) < n + 1:  # this one is queued before the next comes
            threading.Event().wait(0.001)
        queued.append(n)
    lock.release()
    assert not order  # still held once
    lock.release()
    for thread in threads:
        thread.join()
    assert order == queued == [0, 1, 2, 3, 4]


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    lock = _FairLock()
    assert lock.acquire(timeout=1)
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(lock.acquire(timeout=0.05)))
    thread.start()
    thread.join()
    assert outcome == [False]
    assert not lock._waiters
    lock.release()
    assert lock.acquire(timeout=0)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_writer_held_up_past_the_busy_timeout_by_its_own_process_is_a_store_error(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "state.db"), busy_timeout=0.2)
    try:
        held = threading.Event()
        done = threading.Event()

        def hold() -> None:
            with store.atomic("hold the writer"):
                store.audit("agent", "hold", "app/env")
                held.set()
                done.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(10)
        try:
            with pytest.raises(StoreError, match="another writer in this process held"):
                store.audit("api", "late", "app/env")
        finally:
            done.set()
            thread.join()
        assert store.audit("api", "after", "app/env") > 0
    finally:
        store.close()
