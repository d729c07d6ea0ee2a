"""Faults around a running agent (in this process, on the real swarm and a real Git
server): the Git remote answering garbage or slowly, a notification target that hangs,
the state store's disk full or its database locked, the clock jumping. In every case
the agent says so (history, status, /readyz, logs), keeps what it had recorded, and
recovers by itself once the fault is gone."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from gitswarm.errors import PromotionError
from gitswarm.promote.pipeline import Promoter
from gitswarm.reconcile.agent import Agent
from gitswarm.reconcile.apply import Clock
from gitswarm.store import AGENT_LOCK
from harness.gitserve import GitRemote
from harness.postgres import PrivatePostgres
from tests.conftest import SwarmUnderTest
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, running_rig, wait_for
from tests.integration.faults import FlakyRemote, fill, tiny_disk
from tests.integration.swarm_helpers import image_of

pytestmark = [pytest.mark.swarm, pytest.mark.faults]


@dataclass
class Bench:
    """What every test here starts from: a served remote, a stack name, the real swarm
    (its client and registry), and the agent's environment pointed at them."""

    remote: GitRemote
    tmp: Path
    stack: str
    docker: docker.DockerClient
    registry: str

    def rig(self, tmp: Path | None = None, **options: Any) -> AgentRig:
        return AgentRig(self.remote, tmp or self.tmp, self.stack, **options)

    def image(self, tag: str) -> dict[str, Any]:
        return service(f"{self.registry}/busybox:{tag}")

    def update_done(self) -> bool:
        """Swarm finished updating the web service (or never updated it)."""
        spec = self.docker.api.inspect_service(f"{self.stack}_web")
        return spec.get("UpdateStatus", {}).get("State", "completed") == "completed"

    def runs(self, tag: str) -> bool:
        return f"busybox:{tag}" in image_of(self.docker, f"{self.stack}_web")


@pytest.fixture()
def bench(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    docker_client: docker.DockerClient,
    registry: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Bench:
    monkeypatch.setenv("DOCKER_HOST", swarm.docker_host)
    monkeypatch.setenv("GITSWARM_KEYS_DIR", str(tmp_path / "keys"))
    return Bench(git_remote, tmp_path, stack_name, docker_client, registry)


@contextlib.contextmanager
def serving(
    rig: AgentRig, first: Mapping[str, Any], clock: Clock | None = None, **settings: Any
) -> Iterator[tuple[Agent, str]]:
    """Push ``first``, run the agent (polling every 0.5 s), wait until it is deployed."""
    sha = rig.push(first, "first")
    with running_rig(rig, clock, **{"poll_interval": 0.5, "poll_jitter": 0.0, **settings}):
        assert rig.agent is not None
        wait_for(rig.deployed(sha), 60)
        yield rig.agent, sha


def test_git_remote_returning_garbage_then_slow_degrades_and_recovers(bench: Bench) -> None:
    remote = FlakyRemote(bench.remote.url)
    rig = bench.rig(url=remote.url)
    try:
        with serving(rig, {"web": service()}, git_backoff_max=1.0) as (agent, first):
            remote.mode = "garbage"
            second = rig.push({"web": bench.image("2")}, "second")
            wait_for(lambda: not agent.readiness().checks["git"]["ok"], 20)
            assert agent.state.source.error is not None
            assert agent.metrics.git_fetch_errors._value.get() >= 1
            (shown,) = [s for s in agent.statuses() if s["app"] == "app"]
            assert shown["source"]["ok"] is False and shown["source"]["error"]
            assert rig.status().revision == first  # nothing changed on garbage
            assert bench.runs("1")
            remote.mode, remote.delay = "slow", 1.0  # every answer held 1 s
            took = wait_for(rig.deployed(second), 90)
            assert bench.runs("2")
            remote.mode = "pass"
            wait_for(lambda: agent.readiness().ready, 20)
            print(f"FAULT git garbage->slow: deployed through the slow remote in {took:.1f}s")
    finally:
        remote.close()


def test_a_hanging_notification_target_does_not_hold_the_agent(bench: Bench) -> None:
    rig = bench.rig(receiver_delay=600.0)  # never answers
    with serving(rig, {"web": service()}) as (agent, _first):
        receiver = rig.receiver
        assert receiver is not None
        rig.push({"web": service("${NOT_SET}")}, "bad: a missing variable")  # sync_failed
        wait_for(lambda: len(receiver.received) >= 1, 30)
        # The target holds that request; the next commit deploys all the same.
        good = rig.push({"web": bench.image("2")}, "good")
        took = wait_for(rig.deployed(good), 60)
        rig.push({"web": service("${NOT_SET_EITHER}")}, "bad again")
        wait_for(lambda: len(receiver.received) >= 2, 60)
        assert agent.readiness().ready
        started = time.monotonic()
    stopped = time.monotonic() - started
    assert stopped < 20, f"stopping the agent took {stopped:.1f}s (waited on the target?)"
    print(f"FAULT hanging notification: next deploy in {took:.1f}s, stop in {stopped:.1f}s")


def test_store_disk_full_fails_loudly_loses_nothing_and_recovers(bench: Bench) -> None:
    with tiny_disk(bench.tmp / "disk") as disk:
        rig = bench.rig(state=disk / "state.db")
        with serving(rig, {"web": service()}) as (agent, first):
            acknowledged = [(o.id, o.result) for o in rig.operations()]
            filler = fill(disk)
            second = rig.push({"web": bench.image("2")}, "second")
            # Until the agent has met the full disk (its poll found the commit and a
            # write was refused), not a fixed while: under load 6 s saw no attempt.
            wait_for(lambda: not agent.readiness().checks["store"]["ok"], 60)
            failures = agent.metrics.registry.get_sample_value(
                "gitswarm_store_write_failures_total", {}
            )
            assert failures is not None and failures >= 1
            assert rig.status().revision == first
            filler.unlink()
            took = wait_for(rig.deployed(second), 90)
            ops = {o.id: o.result for o in rig.operations()}
            assert all(ops.get(i) == r for i, r in acknowledged), (acknowledged, ops)
            assert bench.runs("2")
            print(f"FAULT disk full: recovered {took:.1f}s after space came back")


def test_store_locked_by_another_writer_fails_loudly_loses_nothing_and_recovers(
    bench: Bench,
) -> None:
    """Another writer (a backup tool, a stuck CLI) holds the SQLite file past the busy
    timeout (2 s here, 30 s by default: the same path, sooner): every write of the agent
    is refused for a while. It says so (ERROR logs, /readyz, the metrics), keeps what it
    could not write and writes it once the lock is gone, then deploys the new commit."""
    rig = bench.rig(busy_timeout=2.0)
    # The lease outlives the lock: the leader keeps acting and meets the refusals.
    with serving(rig, {"web": service()}, lease_ttl=30.0) as (agent, _first):
        acknowledged = [(o.id, o.result) for o in rig.operations()]
        locker = sqlite3.connect(
            bench.tmp / "state.db", isolation_level=None, timeout=1, check_same_thread=False
        )
        locker.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        try:
            second = rig.push({"web": bench.image("2")}, "second")
            # The lock is held until the agent has met it (under load its poll and
            # render can take longer than any fixed hold), and for at least 5 busy
            # timeouts: a timer started with the lock raced the agent's first write.
            wait_for(lambda: not agent.readiness().checks["store"]["ok"], 90)
            failures = agent.metrics.registry.get_sample_value(
                "gitswarm_store_write_failures_total", {}
            )
            assert failures is not None and failures >= 1
            time.sleep(max(0.0, 10.0 - (time.monotonic() - locked)))
        finally:
            locker.rollback()
            locker.close()
        took = wait_for(rig.deployed(second), 60)
        wait_for(lambda: agent.readiness().checks["store"]["ok"], 20)
        assert agent.reconciler.journal.backlog() is None
        ops = {o.id: o.result for o in rig.operations()}
        assert all(ops.get(i) == r for i, r in acknowledged), (acknowledged, ops)
        assert "Running" not in ops.values(), ops
        assert bench.runs("2")
        print(f"FAULT store locked: refused writes kept, deployed {took:.1f}s after the release")


class JumpingClock:
    """The wall clock plus an offset a test moves (the host clock jumping, NTP stepping)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def test_clock_jumping_forward_and_back_keeps_leadership_soaks_and_syncs(bench: Bench) -> None:
    clock = JumpingClock()
    rig = bench.rig(store_clock=clock.now)
    with serving(rig, {"web": service()}, Clock(now=clock.now), lease_ttl=2.0) as (agent, _):
        promoter = Promoter(agent.reconciler)
        refused: list[str] = []

        def soaked() -> dt.timedelta | None:
            """The promotion's soak figure (source_healthy_for) of app/dev, once it runs
            healthy (a rollout's old task may still be stopping)."""
            try:
                return promoter.check_source("app", "dev").healthy_for
            except PromotionError as exc:
                refused.append(exc.message)
                return None

        for jump, image in ((dt.timedelta(hours=2), "2"), (dt.timedelta(hours=-2), "1")):
            wait_for(lambda: bench.update_done(), 60)  # Swarm's rollout over: Healthy
            wait_for(soaked, 30)
            before = soaked()
            clock.offset += jump
            # The soak runs on: a jump neither skips it nor sets it back (model/instant.py),
            # measured from the real deploy's record.
            after = soaked()
            assert before is not None and after is not None, refused[-1:]
            assert before <= after < before + dt.timedelta(seconds=30), (jump, before, after)
            sha = rig.push({"web": bench.image(image)}, f"after {jump}")
            took = wait_for(rig.deployed(sha), 60)
            assert agent.wait_leader(2 * 2.0), f"no leader {2 * 2.0}s after a jump of {jump}"
            assert bench.runs(image)
            print(f"FAULT clock jump {jump / dt.timedelta(hours=1):+.0f}h: deployed in {took:.1f}s")
        results = [o.result for o in rig.operations("sync")]
        assert "Interrupted" not in results and "Running" not in results, results


def slow_to_turn_healthy(image: str) -> dict[str, object]:
    """A service whose tasks turn healthy a few seconds after they start: a health wait
    longer than the lease, so that a sync runs while a clock jumps."""
    return service(
        image,
        healthcheck={
            "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
            "interval": "5s", "start_period": "0s", "retries": 3,
        },
    )  # fmt: skip


class Watch:
    """Samples, every 20 ms, whether each agent leads."""

    def __init__(self, **agents: object) -> None:
        self.agents = agents
        self.seen: dict[str, set[bool]] = {name: set() for name in agents}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, agent in self.agents.items():
                self.seen[name].add(bool(agent.state.leader))  # type: ignore[attr-defined]

    def stop(self) -> dict[str, set[bool]]:
        self._stop.set()
        self._thread.join()
        return self.seen


@pytest.mark.postgres
def test_a_clock_jump_on_the_leaders_host_moves_no_lease_and_runs_no_sync_twice(
    bench: Bench, postgres_server: PrivatePostgres, postgres_url: str
) -> None:
    """Two agents on one PostgreSQL store. The leader's host clock steps 2 h forward in
    the middle of a sync, and 2 h back in the middle of the next. Leases run on the
    server's clock (store/locks.py): the leader keeps its lease (which still ends one TTL
    from now, not 2 h later), finishes each sync once, and the standby neither leads nor
    starts the same operation."""
    # Long enough that a loaded machine stalling the leader's renewals (every TTL/3) does
    # not hand the lease over; a jump of 2 h against it is what is tested.
    lease = 4.0
    schema = f"t_{bench.stack[-6:]}"
    url = postgres_server.create_schema(schema, "gitswarm")
    clock = JumpingClock()
    for name in ("a", "b"):
        (bench.tmp / name).mkdir()
    leader = bench.rig(bench.tmp / "a", store_clock=clock.now, state=url, holder="agent-a")
    standby = bench.rig(bench.tmp / "b", state=url, holder="agent-b")
    first = leader.push({"web": slow_to_turn_healthy(f"{bench.registry}/busybox:1")}, "first")
    options: dict[str, Any] = {"poll_interval": 0.5, "poll_jitter": 0.0, "lease_ttl": lease}
    try:
        with running_rig(leader, Clock(now=clock.now), **options):
            assert leader.agent is not None and leader.store is not None
            wait_for(leader.deployed(first), 60)
            with running_rig(standby, leader=False, **options):
                assert standby.agent is not None
                watch = Watch(leader=leader.agent, standby=standby.agent)
                try:
                    jumps = ((dt.timedelta(hours=2), "2"), (dt.timedelta(hours=-2), "1"))
                    for jump, image in jumps:
                        sha = leader.push(
                            {"web": slow_to_turn_healthy(f"{bench.registry}/busybox:{image}")},
                            f"jump {jump} during this sync",
                        )
                        wait_for(lambda: any(o.revision == sha and o.result == "Running"  # noqa: B023
                                             for o in leader.operations("sync")), 30)  # fmt: skip
                        clock.offset += jump
                        took = wait_for(leader.deployed(sha), 60)
                        info = leader.store.lock_holder(AGENT_LOCK)
                        assert info is not None and info.holder == "agent-a", info
                        left = info.expires_at - dt.datetime.now(dt.UTC)
                        assert left <= dt.timedelta(seconds=lease + 1), f"lease ends in {left}"
                        ops = [o for o in leader.operations("sync") if o.revision == sha]
                        assert [(o.result, o.holder) for o in ops] == [("Succeeded", "agent-a")], (
                            ops
                        )
                        hours = jump / dt.timedelta(hours=1)
                        print(
                            f"FAULT leader clock {hours:+.0f}h mid-sync: synced once in {took:.1f}s"
                        )
                finally:
                    seen = watch.stop()
                assert seen["leader"] == {True}, "the leader lost its lease to a clock jump"
                assert seen["standby"] == {False}, "the standby took the lead"
        assert "Interrupted" not in [o.result for o in leader.operations()]
    finally:
        postgres_server.drop_schema(schema, "gitswarm")
