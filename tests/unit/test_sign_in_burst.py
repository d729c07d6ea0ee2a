"""A burst of sign-ins cannot exhaust the agent (SPEC.md section 6, trust model): each
argon2 check holds 64 MiB and a core, so at most ``api.sign_in_slots`` run at once,
whatever the number of addresses they come from; the rest wait a second for a slot,
then get 503 with Retry-After, audited within the budget of refusals.py and counted in
/metrics. Through the real app, with a hasher that records how many run at once, and
with the real argon2 at 64 MiB, measuring the process's peak RSS. The dummy hash of
unknown users is made once, however many first sign-ins race for it."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from gitswarm.api import ApiSettings, create_app
from gitswarm.api.passwords import Passwords
from gitswarm.api.refusals import SUMMARY
from gitswarm.api.sessions import Sessions
from gitswarm.errors import BusyError
from gitswarm.model.account import RoleBinding
from gitswarm.reconcile.metrics import Metrics
from gitswarm.store import Store
from tests.dashboard_rig import CHEAP, csrf_of
from tests.fake_agent import FakeAgent

USER, PASSWORD = "alice", "alice's long password"
BUSY = "The agent is checking too many sign-ins at once; try again in 5 s."


class RecordingHasher(PasswordHasher):
    """A cheap argon2id that takes ``hold`` seconds and records the most at once."""

    def __init__(self, hold: float) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.hold = hold
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def _run(self) -> None:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.hold)
        with self.lock:
            self.now -= 1

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._run()
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._run()
        return super().hash(password, salt=salt)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "state.db")) as opened:
        opened.add_user(USER, CHEAP.hash(PASSWORD), (RoleBinding("viewer", ("*",)),))
        yield opened


async def _sign_in(app: Any, address: str, user: str, password: str) -> httpx.Response:
    """A browser at ``address``: the form (its CSRF cookie), then the post."""
    transport = httpx.ASGITransport(app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        form = await client.get("/ui/login")
        assert form.status_code == 200
        fields = {"csrf": csrf_of(form.text), "username": user, "password": password}
        return await client.post("/ui/login", data=fields, follow_redirects=False)


def _burst(app: Any, count: int) -> list[httpx.Response]:
    """``count`` sign-ins of unknown users at once, each from its own address, then the
    real user's, once the burst has ended."""

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            answers = await asyncio.gather(
                *(
                    _sign_in(app, f"2001:db8::{i:x}", f"nobody-{i}", "guess-guess")
                    for i in range(count)
                )
            )
            return [*answers, await _sign_in(app, "192.0.2.1", USER, PASSWORD)]

    return asyncio.run(run())


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_fifty_sign_ins_at_once_check_two_passwords_at_a_time_and_the_rest_get_503(
    store: Store,
) -> None:
    hasher, metrics = RecordingHasher(hold=0.1), Metrics()
    settings = ApiSettings(audit=store.audit, accounts=store, hasher=hasher, sign_in_slots=2)
    app = create_app(FakeAgent(), settings, metrics)

    *burst, real = _burst(app, 50)

    assert hasher.peak == 2  # never more than the slots, the dummy's one hash included
    codes = [r.status_code for r in burst]
    assert set(codes) <= {401, 429, 503}  # never a 500
    busy = [r for r in burst if r.status_code == 503]
    # 50 checks of 0.1 s, two at a time, take 2.5 s: those still waiting after 1 s got 503
    assert busy and codes.count(401) >= 2
    for r in busy:
        assert r.headers["retry-after"] == "5"
        assert BUSY in r.text  # on the sign-in page, with a fresh form
        assert 'name="csrf"' in r.text
    assert hasher.calls == codes.count(401) + 1 + 1  # + the dummy + the real user
    assert real.status_code == 303 and real.headers["location"] == "/ui/"
    assert _sample(metrics, "gitswarm_login_failures_total", reason="busy") == len(busy)
    assert _sample(metrics, "gitswarm_login_failures_total", reason="bad_credentials") == (
        codes.count(401)
    )
    rows = store.audit_events(limit=None)
    assert {r.action for r in rows} <= {"login-failed", "login-busy", "login", SUMMARY}
    assert sum(r.action == "login-busy" for r in rows) >= 1
    # 50 addresses: the first 20 of the window one row each, the rest (the budget's
    # "other addresses") summed up when the app stopped
    assert len(rows) <= 20 + 1 + 1 + 1


def test_a_busy_sign_in_is_no_failure_for_the_throttle(store: Store) -> None:
    """503 says nothing about the password: six of them from one address do not lock the
    user or the address out, and the store's sessions stay as they were."""
    metrics = Metrics()
    settings = ApiSettings(audit=store.audit, accounts=store)
    passwords = Passwords(RecordingHasher(hold=0.0), slots=1, wait=0.01)
    sessions = Sessions(settings, metrics, passwords)
    with passwords._slots:  # the one slot taken, as by a long check
        answers = [sessions.sign_in(USER, PASSWORD, "192.0.2.1") for _ in range(6)]
    assert {(a.ok, a.status, a.retry_after, a.message) for a in answers} == {(False, 503, 5, BUSY)}
    assert _sample(metrics, "gitswarm_login_failures_total", reason="busy") == 6
    assert [r.action for r in store.audit_events(limit=None)] == ["login-busy"] * 6
    assert sessions.sign_in(USER, PASSWORD, "192.0.2.1").ok


def test_at_most_four_sign_ins_a_slot_wait_and_the_next_is_refused_at_once() -> None:
    """Each waiting sign-in holds a thread of the server's 40, which every API call,
    webhook and page needs too: a burst may take the slots and a few waiters, no more."""
    passwords = Passwords(RecordingHasher(hold=0.0), slots=1, wait=2.0)
    assert passwords.queue == 4
    errors: list[str] = []

    def waiter() -> None:
        try:
            passwords.verify(None, "guess-guess")
        except BusyError as exc:
            errors.append(exc.message)

    with passwords._slots:  # the one slot taken, as by a long check
        waiters = [threading.Thread(target=waiter) for _ in range(4)]
        for t in waiters:
            t.start()
        deadline = time.monotonic() + 5
        while passwords._waiting < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(BusyError) as raised:
            passwords.verify(None, "guess-guess")
        assert time.monotonic() - started < 0.5  # not the 2 s wait: refused at once
    assert raised.value.message == (
        "the agent is checking as many sign-ins as it may at once, and 4 more wait for a slot"
    )
    for t in waiters:
        t.join()
    assert errors == []  # the four waiting got the slot once it was free


def test_two_first_sign_ins_at_once_make_one_dummy_hash() -> None:
    hasher = RecordingHasher(hold=0.2)
    passwords = Passwords(hasher, slots=2)
    threads = [threading.Thread(target=passwords.verify, args=(None, "guess-guess")) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hasher.calls == 1 + 2  # one dummy hash, two checks against it


def _peak_rss_since_reset() -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB of this process."""
    fields = dict(
        re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    )
    return int(fields["VmRSS"]), int(fields["VmHWM"])


def test_a_burst_with_the_real_argon2_at_64_mib_holds_at_most_the_slots_of_memory(
    store: Store,
) -> None:
    """Before the slots, 20 sign-ins at once held 20 × 64 MiB (bench: ``signin``)."""
    clear = Path("/proc/self/clear_refs")
    try:
        clear.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pytest.skip("cannot reset this process's peak RSS (/proc/self/clear_refs)")
    real = PasswordHasher(memory_cost=64 * 1024, time_cost=1, parallelism=1)  # 64 MiB each
    settings = ApiSettings(audit=store.audit, accounts=store, hasher=real, sign_in_slots=2)
    app = create_app(FakeAgent(), settings, Metrics())
    before, _ = _peak_rss_since_reset()
    clear.write_text("5")
    *burst, signed = _burst(app, 20)
    _, peak = _peak_rss_since_reset()
    grown_mib = (peak - before) / 1024
    assert {r.status_code for r in burst} <= {401, 503}
    assert signed.status_code == 303
    assert grown_mib <= 2 * 64 + 40, f"peak RSS grew by {grown_mib:.0f} MiB"
