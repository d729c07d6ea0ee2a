"""Locks with a lease: exactly one winner among racing threads and processes, expiry and
takeover, renew and release, and the waiting context manager."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from gitswarm.errors import LockedError
from gitswarm.store import AGENT_LOCK, Store, new_holder_id, sync_lock
from harness.postgres import PrivatePostgres


class ManualClock:
    """The store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_a_free_lock_is_acquired_and_then_refused_to_others(store: Store) -> None:
    assert store.lock_holder("agent") is None
    assert store.acquire_lock("agent", "a", 30)
    assert not store.acquire_lock("agent", "b", 30)
    info = store.lock_holder("agent")
    assert info is not None and info.holder == "a" and info.name == "agent"
    assert info.expires_at - info.acquired_at == timedelta(seconds=30)
    assert store.acquire_lock("other", "b", 30)  # locks are independent by name


def test_acquiring_again_renews_and_keeps_the_acquisition_time(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        assert store.acquire_lock("x", "a", 30)
        first = store.lock_holder("x")
        clock.advance(10)
        assert store.acquire_lock("x", "a", 30)
        again = store.lock_holder("x")
        assert first is not None and again is not None
        assert again.acquired_at == first.acquired_at
        assert again.expires_at == clock.now + timedelta(seconds=30)


def test_an_expired_lease_is_taken_over(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        assert store.acquire_lock("x", "a", 30)
        clock.advance(29.999)
        assert not store.acquire_lock("x", "b", 30)
        clock.advance(0.001)  # the lease ends at exactly acquired + ttl
        assert store.lock_holder("x") is None
        assert store.acquire_lock("x", "b", 30)
        info = store.lock_holder("x")
        assert info is not None and info.holder == "b" and info.acquired_at == clock.now
        # the old holder learns it lost the lock
        assert not store.renew_lock("x", "a", 30)
        assert not store.release_lock("x", "a")
        assert store.lock_holder("x") == info


def test_renew_extends_the_lease_of_its_holder_until_another_takes_it(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        assert store.acquire_lock("x", "a", 30)
        clock.advance(20)
        assert store.renew_lock("x", "a", 30)
        clock.advance(20)  # 40 s after acquiring: alive thanks to the renewal
        assert not store.acquire_lock("x", "b", 30)
        assert not store.renew_lock("x", "b", 30)
        clock.advance(30)
        # Ran out, but nobody took it: its holder may go on (a stalled process, or the
        # clock stepped forward), which is as safe as acquiring it again.
        assert store.renew_lock("x", "a", 30)
        clock.advance(31)
        assert store.acquire_lock("x", "b", 30)  # taken over: now it is lost for good
        assert not store.renew_lock("x", "a", 30)
        assert not store.renew_lock("never-taken", "a", 30)


class JumpedClock:
    """A client host's wall clock, stepped by ``offset`` (NTP, a VM resumed)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture()
def postgres_store_url(postgres_server: PrivatePostgres, postgres_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create_schema(name, "gitswarm")
    postgres_server.drop_schema(name, "gitswarm")


@pytest.mark.postgres
def test_leases_on_postgres_run_on_the_servers_clock_not_the_clients(
    postgres_store_url: str,
) -> None:
    """Agents on several hosts share one PostgreSQL store: a lease must mean the same to
    all of them, whatever each host's clock says (a step of NTP, a VM resumed). Records
    keep the client's time; leases take the server's."""
    store_url = postgres_store_url
    ahead, behind = JumpedClock(timedelta(hours=2)), JumpedClock(timedelta(hours=-2))
    with (
        Store(store_url) as right,
        Store(store_url, clock=ahead) as fast,
        Store(store_url, clock=behind) as slow,
    ):
        assert right.acquire_lock("x", "right", 30)
        assert not fast.acquire_lock("x", "fast", 30)  # 2 h ahead: not expired for it
        assert slow.acquire_lock("y", "slow", 30)
        assert not right.acquire_lock("y", "right", 30)  # 2 h behind: not expired either
        info = right.lock_holder("y")
        assert info is not None and info.holder == "slow"
        assert abs(info.expires_at - datetime.now(UTC) - timedelta(seconds=30)) < timedelta(
            seconds=5
        )
        assert fast.acquire_lock("z", "fast", 30)
        assert fast.renew_lock("z", "fast", 30)
        assert fast.lock_holder("z") is not None
        assert not right.acquire_lock("z", "right", 30)
        assert fast.release_lock("z", "fast")


def test_release_frees_the_lock_for_the_next_holder(store: Store) -> None:
    assert store.acquire_lock("x", "a", 30)
    assert not store.release_lock("x", "b")
    assert store.release_lock("x", "a")
    assert not store.release_lock("x", "a")
    assert store.lock_holder("x") is None
    assert store.acquire_lock("x", "b", 30)


def test_a_lease_needs_a_positive_ttl(store: Store) -> None:
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive TTL"):
            store.acquire_lock("x", "a", bad)
    with pytest.raises(ValueError, match="positive TTL"):
        store.renew_lock("x", "a", 0)


def test_lock_names_and_holder_ids() -> None:
    assert sync_lock("medianest", "production") == "sync/medianest/production"
    assert AGENT_LOCK == "agent"
    a, b = new_holder_id(), new_holder_id()
    assert a != b
    host, pid, _ = a.split(":")
    assert host and int(pid) > 0


# --- the context manager ----------------------------------------------------------------


def test_lock_context_holds_for_the_block_and_releases_after(store: Store) -> None:
    with store.lock("x", "a", 30) as lease:
        assert (lease.name, lease.holder) == ("x", "a")
        holder = store.lock_holder("x")
        assert holder is not None and holder.holder == "a"
        lease.renew()
    assert store.lock_holder("x") is None
    with pytest.raises(RuntimeError), store.lock("x", "a", 30):
        raise RuntimeError("the body failed")
    assert store.lock_holder("x") is None  # released on errors too


def test_lock_context_fails_at_once_naming_the_holder(store: Store) -> None:
    assert store.acquire_lock("sync/web/prod", "agent-7", 60)
    since = store.lock_holder("sync/web/prod")
    assert since is not None
    started = time.monotonic()
    with pytest.raises(LockedError) as caught, store.lock("sync/web/prod", "cli-1", 30):
        pass
    assert time.monotonic() - started < 1
    message = str(caught.value)
    assert "'sync/web/prod' is held by agent-7 since" in message
    assert f"{since.acquired_at:%Y-%m-%d %H:%M:%S} UTC" in message
    assert caught.value.reason == "Locked" and caught.value.retryable


def test_lock_context_waits_for_the_holder_to_release(store: Store) -> None:
    assert store.acquire_lock("x", "a", 60)
    threading.Timer(0.3, store.release_lock, args=("x", "a")).start()
    started = time.monotonic()
    with store.lock("x", "b", 30, wait=10) as lease:
        waited = time.monotonic() - started
        assert lease.holder == "b"
    assert 0.25 < waited < 5


def test_lock_context_gives_up_after_wait(store: Store) -> None:
    assert store.acquire_lock("x", "a", 60)
    started = time.monotonic()
    with (
        pytest.raises(LockedError, match=r"held by a since .* after waiting 0\.3s"),
        store.lock("x", "b", 30, wait=0.3),
    ):
        pass
    assert 0.3 <= time.monotonic() - started < 2


def test_a_lost_lease_says_so_on_renew(store_url: str) -> None:
    clock = ManualClock()
    with (
        Store(store_url, clock=clock, lease_clock=clock) as store,
        store.lock("x", "a", 30) as lease,
    ):
        clock.advance(31)
        assert store.acquire_lock("x", "b", 30)
        with pytest.raises(LockedError, match="lost the lock 'x'"):
            lease.renew()
    # leaving the block did not release b's lock
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        info = store.lock_holder("x")
        assert info is not None and info.holder == "b"


# --- races: exactly one winner ----------------------------------------------------------


def test_racing_threads_have_exactly_one_winner(store: Store) -> None:
    threads = 12
    rounds = 8
    barrier = threading.Barrier(threads)

    def contend(me: str) -> list[int]:
        won = []
        for r in range(rounds):
            barrier.wait(30)
            if store.acquire_lock(f"race-{r}", me, 60):
                won.append(r)
        return won

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {f"t{i}": pool.submit(contend, f"t{i}") for i in range(threads)}
        wins = {me: future.result(timeout=60) for me, future in futures.items()}
    for r in range(rounds):
        winners = [me for me, won in wins.items() if r in won]
        assert len(winners) == 1, (r, wins)
        info = store.lock_holder(f"race-{r}")
        assert info is not None and info.holder == winners[0]


def test_racing_threads_taking_over_an_expired_lease_have_one_winner(store_url: str) -> None:
    clock = ManualClock()
    with Store(store_url, clock=clock, lease_clock=clock) as store:
        threads = 10
        names = [f"stale-{r}" for r in range(5)]
        for name in names:
            assert store.acquire_lock(name, "dead", 1)
        clock.advance(2)
        barrier = threading.Barrier(threads)

        def contend(me: str) -> list[str]:
            won = []
            for name in names:
                barrier.wait(30)
                if store.acquire_lock(name, me, 60):
                    won.append(name)
            return won

        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(contend, f"t{i}") for i in range(threads)]
            won = [name for future in futures for name in future.result(timeout=60)]
        assert sorted(won) == names


def _contend_in_process(
    url: str,
    names: list[str],
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.queues.Queue[tuple[str, str, bool]],
) -> None:
    with Store(url) as store:
        me = new_holder_id()
        for name in names:
            barrier.wait(30)
            results.put((name, me, store.acquire_lock(name, me, 60)))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_racing_processes_have_exactly_one_winner(store_url: str, start_method: str) -> None:
    with Store(store_url) as store:  # migrated before the race; one lock already stale
        assert store.acquire_lock("stale", "dead", 0.2)
    time.sleep(0.3)
    ctx = multiprocessing.get_context(start_method)
    procs = 6
    names = ["fresh-1", "fresh-2", "stale", "fresh-3"]
    barrier = ctx.Barrier(procs)
    results: multiprocessing.queues.Queue[tuple[str, str, bool]] = ctx.Queue()
    workers = [
        ctx.Process(target=_contend_in_process, args=(store_url, names, barrier, results))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=60) for _ in range(procs * len(names))]
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0] * procs
    with Store(store_url) as store:
        for name in names:
            winners = [holder for n, holder, won in outcomes if n == name and won]
            assert len(winners) == 1, (name, outcomes)
            info = store.lock_holder(name)
            assert info is not None and info.holder == winners[0]
