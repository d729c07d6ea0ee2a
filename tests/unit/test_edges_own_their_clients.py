"""No process-wide Docker pool or signature verifier (STYLE.md: no mutable module
globals): the edge that builds a Reconciler makes its own ``SwarmPool`` (swarm/pool.py)
and ``Verifier``, passes them in and closes them when it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gitswarm.reconcile.sync as sync_module
import gitswarm.source.verify as verify_module
from gitswarm.cli.ops import session
from gitswarm.model.config import Target
from gitswarm.swarm import pool as pool_module
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.pool import SwarmPool
from gitswarm.swarm.targets import TargetTable
from tests.gitops import GitOpsRepo


def test_there_is_no_default_pool_or_shared_verifier() -> None:
    assert not hasattr(sync_module, "default_swarm_for")
    assert not hasattr(sync_module, "SwarmPool")  # it lives in swarm/ now
    assert not hasattr(verify_module, "verify_commit")
    assert not hasattr(verify_module, "_shared_verifier")


class _Closing(FakeSwarm):
    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_pool_keeps_one_client_per_target_and_closes_them_all() -> None:
    table = TargetTable({"a": Target("a"), "b": Target("b")})
    pool = SwarmPool(_Closing, targets=table)
    a, b = Target("a"), Target("b")
    first = pool(a)
    assert pool(a) is first
    assert pool(b) is not first
    clients: list[Any] = pool.clients()
    assert len(clients) == 2
    pool.close()
    assert all(c.closed for c in clients)
    assert pool.clients() == []


def test_each_cli_session_makes_and_closes_its_own_pool_and_verifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []

    class RecordingPool(SwarmPool):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(_Closing, **kwargs)
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True
            super().close()

    class RecordingVerifier(verify_module.Verifier):
        def __init__(self) -> None:
            super().__init__()
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(pool_module, "SwarmPool", RecordingPool)
    monkeypatch.setattr(verify_module, "Verifier", RecordingVerifier)
    repo = GitOpsRepo(tmp_path / "repo", "shop")
    repo.commit("first")
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with session(str(repo.path), state, as_json=True) as one:
        pool, verifier = made
        assert one.reconciler.swarm_for is pool
        assert one.reconciler.verifier is verifier
        assert not pool.closed and not verifier.closed
    assert pool.closed and verifier.closed
    with session(str(repo.path), state, as_json=True) as two:
        assert two.reconciler.swarm_for is not pool  # a new one: nothing is shared
    assert len(made) == 4
