"""The agent's state has one owner (reconcile/agent/state.py): the workers and the API
threads change and read it only through methods that take its lock, and what they get
back is a snapshot that does not change under them."""

from __future__ import annotations

import threading

from gitswarm.errors import SourceError
from gitswarm.reconcile.agent import AgentSettings, AgentState


def test_concurrent_heals_are_counted_once_each_and_the_limit_holds() -> None:
    state = AgentState(AgentSettings(heal_limit=3, heal_window=600), lambda: 100.0)
    barrier = threading.Barrier(16)
    admitted: list[bool] = []

    def heal() -> None:
        barrier.wait()
        admitted.append(state.admit_heal("web", "prod"))

    threads = [threading.Thread(target=heal) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert admitted.count(True) == 3  # checking and counting are one step
    assert state.first_heal_alert("web", "prod") and not state.first_heal_alert("web", "prod")
    state.heal_settled("web", "prod")
    assert state.first_heal_alert("web", "prod")


def test_the_git_view_is_a_snapshot_taken_under_the_lock() -> None:
    now = [50.0]
    state = AgentState(AgentSettings(), lambda: now[0])
    assert state.fetched("a" * 40) is None
    seen = state.source
    state.fetch_failed(SourceError("remote down"))
    state.fetch_failed(SourceError("remote down"))
    assert seen.error is None and seen.failures == 0  # what a reader holds stays whole
    later = state.source
    assert later.head == "a" * 40 and later.failures == 2 and later.last_fetch_ok == 50.0
    now[0] = 60.0
    assert state.fetched("b" * 40) == "a" * 40
    assert state.source.failures == 0 and state.source.error is None
