"""The C allocator under the agent (reconcile/allocator.py, issue 18): the arena cap is
applied by ``gitswarm serve`` once, before any thread; the trim runs when a burst of the
agent's work ends; both are no-ops where the C library has no such call."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitswarm.cli import serve as serve_cli
from gitswarm.model.agent import TriggerRequest
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.allocator import ARENAS, M_ARENA_MAX, Allocator
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from tests.gitops import GitOpsRepo, service


class Libc:
    """A stand-in C library that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", (param, value)))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", (pad,)))
        return 1


def test_the_arena_cap_and_the_trim_call_glibc_with_its_constants() -> None:
    libc = Libc()
    allocator = Allocator.of_process(libc)
    assert allocator.cap_arenas() is True
    assert allocator.trim() is True
    assert libc.calls == [("mallopt", (M_ARENA_MAX, ARENAS)), ("malloc_trim", (0,))]
    assert (M_ARENA_MAX, ARENAS) == (-8, 2)


def test_without_glibc_both_are_no_ops() -> None:
    allocator = Allocator.of_process(object())  # musl, macOS: neither symbol
    assert allocator.cap_arenas() is False
    assert allocator.trim() is False
    assert Allocator().trim() is False


def test_this_process_s_c_library_takes_both() -> None:
    allocator = Allocator.of_process()
    if allocator.mallopt is None:
        pytest.skip("not glibc")
    assert allocator.malloc_trim is not None
    assert isinstance(allocator.trim(), bool)


def test_serve_caps_the_arenas_once_before_any_thread_and_hands_the_allocator_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    libc = Libc()
    seen: dict[str, object] = {}

    def of_process(lib: object | None = None) -> Allocator:
        seen["threads_at_cap"] = threading.active_count()
        return Allocator(libc.mallopt, libc.malloc_trim)

    def run_agent(config: object, *, stop: object, allocator: Allocator) -> int:
        seen["calls_at_run"] = list(libc.calls)
        seen["allocator"] = allocator
        return 0

    monkeypatch.setattr(serve_cli.Allocator, "of_process", staticmethod(of_process))
    monkeypatch.setattr(serve_cli, "run_agent", run_agent)
    monkeypatch.setattr(serve_cli, "load_serve_config", lambda *_a, **_k: _Config())
    monkeypatch.setattr(serve_cli, "setup_logging", lambda *_a: None)
    # serve ends through leave(), which exits the process at once (os._exit) when a
    # thread other than the main one is still alive -- as one of the test process's own
    # may be: it killed a pytest-xdist worker. Here it only exits the command.
    monkeypatch.setattr(serve_cli, "leave", sys.exit)
    result = CliRunner().invoke(serve_cli.serve, ["--repo", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["calls_at_run"] == [("mallopt", (M_ARENA_MAX, ARENAS))]  # once, before
    assert libc.calls == [("mallopt", (M_ARENA_MAX, ARENAS))]
    assert isinstance(seen["allocator"], Allocator)
    assert seen["allocator"].malloc_trim == libc.malloc_trim  # type: ignore[attr-defined]


class _Config:
    log_format = "text"
    log_level = "WARNING"


@pytest.fixture()
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Agent]]:
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    stores: list[Store] = []

    def build(after_burst: Callable[[], object]) -> Agent:
        repo = GitOpsRepo(tmp_path / "repo", "mem")
        repo.compose({"web": service("127.0.0.1:5000/busybox:1")})
        repo.commit("one")
        swarm = FakeSwarm()
        store = Store(str(tmp_path / "state.db"))
        stores.append(store)
        source = RepoSource.open(str(repo.path))
        settings = AgentSettings(events=False, poll_interval=300, drift_interval=300)
        reconciler = Reconciler(source, store, lambda _t: swarm)
        return Agent(
            source=source,
            store=store,
            reconciler=reconciler,
            settings=settings,
            after_burst=after_burst,
        )

    yield build
    for store in stores:
        store.close()


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_agent_trims_once_when_a_burst_of_work_ends_and_not_while_idle(
    agent: Callable[..., Agent],
) -> None:
    trims: list[int] = []
    running = agent(lambda: trims.append(1))
    with running.running():
        assert running.wait_leader(10)
        _until(lambda: running.idle() and len(trims) >= 1)  # the first poll and sync
        first = len(trims)
        time.sleep(1.5)  # idle: the dispatch loop wakes (1 s) and does not trim again
        assert len(trims) == first
        running.enqueue(("drift-all",), TriggerRequest("agent"))
        _until(lambda: len(trims) == first + 1)
        time.sleep(0.2)
        assert len(trims) == first + 1


def test_a_trim_that_raises_does_not_stop_the_agent(agent: Callable[..., Agent]) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise OSError("no")

    running = agent(broken)
    with running.running():
        assert running.wait_leader(10)
        _until(lambda: running.idle() and len(calls) >= 1)
        running.enqueue(("drift-all",), TriggerRequest("agent"))
        _until(lambda: len(calls) >= 2)
        assert running.store.get_status("app", "dev") is not None
