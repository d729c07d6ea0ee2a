"""Fault: the agent is killed (SIGKILL, with the Docker CLI it runs) at each stage of a
sync — right after its render created the new config, in the middle of ``docker stack
deploy``, during the health wait, during garbage collection. A new agent on the same
store finishes the job: the interrupted operation is recorded as Interrupted (never left
Running), the stack converges at the head revision, and no config is orphaned or
duplicated.

The kill is placed exactly by a proxy in front of the real engine (faults.DockerTap):
the agent's own requests say where it is.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from gitswarm.api.settings import hash_token
from gitswarm.model.operation import Operation
from gitswarm.store import Store
from harness.gitserve import GitRemote
from tests.conftest import SwarmUnderTest
from tests.gitops import service
from tests.integration.agent_rig import AgentRig, wait_for
from tests.integration.faults import (
    AgentProcess,
    DockerTap,
    docker_tap,
    fill,
    kill_leader,
    takeover_seconds,
    tiny_disk,
)
from tests.integration.swarm_helpers import object_names

pytestmark = [pytest.mark.swarm, pytest.mark.faults]

LEASE = 2.0


def settings(remote: GitRemote, tmp: Path) -> dict[str, Any]:
    return {
        "repo": remote.url,
        "state": str(tmp / "state.db"),
        "poll_interval": 0.5,
        "lease_ttl": LEASE,
        "drift_interval": 300,
    }


def stack(rig: AgentRig, conf: str, message: str) -> str:
    """web (with config ``conf``, slow to turn healthy) and worker."""
    slow = service(
        healthcheck={
            "test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
            "interval": "2s", "start_period": "0s", "retries": 3,
        },
        configs=[{"source": "conf", "target": "/etc/conf"}],
    )  # fmt: skip
    assert rig.wc is not None
    rig.wc.write_files({"base/app.conf": conf})
    return rig.push(
        {"web": slow, "worker": service()}, message, configs={"conf": {"file": "./app.conf"}}
    )


def at_head(store: Store, sha: str) -> Callable[[], bool]:
    """Whether app/dev is deployed and healthy at ``sha``, as the store says."""

    def check() -> bool:
        status = store.get_status("app", "dev")
        return bool(status and status.revision == sha and status.health == "Healthy")

    return check


def start(agents: list[AgentProcess], tmp: Path, name: str, conf: dict[str, Any], host: str
          ) -> AgentProcess:  # fmt: skip
    """``gitswarm serve`` as ``name`` on the engine at ``host``, stopped after the test."""
    agent = AgentProcess(tmp, name, conf, host)
    agents.append(agent)
    return agent


def ops_at(store: Store, head: str) -> list[Operation]:
    return [o for o in store.history(app="app", env="dev") if o.revision == head]


def redone_once(store: Store, head: str) -> list[Operation]:
    """The operations at ``head`` once a new agent converged there: the dead agent's
    Interrupted (never left Running), and the one that did it again."""
    ops = ops_at(store, head)
    assert sorted(o.result for o in ops) == ["Interrupted", "Succeeded"], ops
    return ops


def arm(tap: DockerTap, stage: str, kill: Callable[[], None]) -> None:
    """Kill the agent at ``stage`` of its next sync."""
    if stage == "after-render":  # the new config exists, nothing deployed yet
        tap.on("POST", "/configs/create", kill, after=True)
    elif stage == "stack-deploy":  # one service created, the other not
        tap.on("POST", "/services/create", kill, after=True)
    elif stage == "health-wait":  # both deployed, the agent polls their tasks
        tap.on(
            "POST",
            "/services/(create|[^/]+/update)",
            lambda: tap.on("GET", "/tasks", kill, nth=2),
            after=True,
        )
    elif stage == "gc":  # converged, removing the old config version
        tap.on("DELETE", "/configs/[^/]+", kill)
    else:
        raise AssertionError(stage)


STAGES = ["after-render", "stack-deploy", "health-wait", "gc"]


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_at_each_stage_then_a_new_agent_finishes_the_sync(
    stage: str,
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    agents: list[AgentProcess],
    docker_client: docker.DockerClient,
) -> None:
    rig = AgentRig(git_remote, tmp_path, stack_name)
    rig.sync["keep_versions"] = 0  # GC removes every unused version at once
    rig.wc = git_remote.clone()
    store = Store(str(tmp_path / "state.db"))

    converged = functools.partial(at_head, store)
    try:
        with docker_tap(swarm.docker_host, tmp_path) as tap:
            first = stack(rig, "v1\n", "first") if stage == "gc" else None  # to collect later
            agent = start(agents, tmp_path, "a0", settings(git_remote, tmp_path), tap.docker_host)
            wait_for(converged(first) if first else agent.leader, 90)
            arm(tap, stage, agent.kill_9)
            head = stack(rig, "v2\n", f"kill during {stage}")
            wait_for(lambda: agent.proc.poll() is not None, 90)
        at_kill = {
            "configs": object_names(docker_client, stack_name, "config"),
            "services": {s.name for s in docker_client.services.list(
                filters={"label": f"com.docker.stack.namespace={stack_name}"})},
        }  # fmt: skip
        results = [o.result for o in ops_at(store, head)]
        assert results == ["Running"], (stage, results)  # the dead agent's operation

        started = time.monotonic()
        start(agents, tmp_path, "b", settings(git_remote, tmp_path), swarm.docker_host)
        wait_for(converged(head), 120)
        took = time.monotonic() - started
        redone_once(store, head)
        configs = object_names(docker_client, stack_name, "config")
        assert len(configs) == 1, f"{stage}: configs {sorted(configs)} (at the kill: {at_kill})"
        (name,) = configs
        live = docker_client.services.get(f"{stack_name}_web").attrs["Spec"]["TaskTemplate"]
        assert [c["ConfigName"] for c in live["ContainerSpec"]["Configs"]] == [name]
        for svc in ("web", "worker"):
            tasks = docker_client.api.tasks(
                filters={"service": f"{stack_name}_{svc}", "desired-state": "running"}
            )
            assert len(tasks) == 1, f"{svc}: {len(tasks)} tasks"
        print(f"FAULT kill-9 {stage}: at the kill {at_kill}; recovered in {took:.1f}s")
    finally:
        store.close()


@pytest.mark.postgres
def test_two_agents_on_postgres_the_leader_killed_mid_sync_the_standby_finishes_once(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    agents: list[AgentProcess],
    docker_client: docker.DockerClient,
    postgres_url: str,
    postgres_server: Any,
) -> None:
    schema = f"t_{stack_name[-6:]}"
    url = postgres_server.create_schema(schema, "gitswarm")
    rig = AgentRig(git_remote, tmp_path, stack_name)
    rig.wc = git_remote.clone()
    conf = {**settings(git_remote, tmp_path), "state": url}
    store = Store(url)
    try:
        with docker_tap(swarm.docker_host, tmp_path) as tap:
            leader = start(agents, tmp_path, "a", conf, tap.docker_host)
            wait_for(leader.leader, 30)
            standby = start(agents, tmp_path, "b", conf, swarm.docker_host)
            wait_for(lambda: standby.ready() is not None, 30)
            assert not standby.leader()
            died: list[tuple[str, dt.datetime]] = []
            arm(tap, "health-wait", lambda: died.append(kill_leader(leader, store)))
            head = stack(rig, "v1\n", "the leader dies during the health wait")
            wait_for(lambda: leader.proc.poll() is not None, 90)
        wait_for(standby.leader, 30)
        [(dead_holder, killed)] = died
        took = takeover_seconds(store, dead_holder, killed)
        assert took <= 2 * LEASE, f"takeover {took:.2f}s after the kill"  # two lease periods
        wait_for(at_head(store, head), 120)
        finished = (dt.datetime.now(dt.UTC) - killed).total_seconds()
        ops = redone_once(store, head)
        (dead,) = [o for o in ops if o.result == "Interrupted"]
        (done,) = [o for o in ops if o.result == "Succeeded"]
        assert dead.holder != done.holder and done.started_at >= dead.started_at
        assert len(object_names(docker_client, stack_name, "config")) == 1
        print(f"FAULT postgres leader killed: takeover {took:.2f}s, synced {finished:.1f}s after")
    finally:
        store.close()
        postgres_server.drop_schema(schema, "gitswarm")


TOKEN = "faults-deployer-token"


def test_kill_9_with_records_waiting_in_the_journal_loses_nothing_it_acknowledged(
    swarm: SwarmUnderTest,
    git_remote: GitRemote,
    tmp_path: Path,
    stack_name: str,
    agents: list[AgentProcess],
    docker_client: docker.DockerClient,
) -> None:
    """The store's disk fills in the health wait of a sync: the deploy happened, but its
    end and the status after it are refused and wait in the agent's journal (memory;
    reconcile/journal.py). While they wait, the agent acknowledges nothing it could not
    record: an API sync is refused (503: its audit cannot be written), not 202. Then the
    agent is killed. What was never written is not claimed anywhere: the operation is
    Interrupted (not Running, not Succeeded), and the next agent does it again, records
    it, and the status is what runs."""
    with tiny_disk(tmp_path / "disk") as disk:
        conf = {
            **settings(git_remote, tmp_path),
            "state": str(disk / "state.db"),
            "api": {"tokens": {f"sha256:{hash_token(TOKEN)}": {"user": "ops",
                                                              "roles": ["deployer"]}}},
        }  # fmt: skip
        rig = AgentRig(git_remote, tmp_path, stack_name)
        rig.sync["keep_versions"] = 0  # GC removes every unused version at once
        rig.wc = git_remote.clone()
        store = Store(str(disk / "state.db"))
        try:
            with docker_tap(swarm.docker_host, tmp_path) as tap:
                first = stack(rig, "v1\n", "first")
                agent = start(agents, tmp_path, "a", conf, tap.docker_host)
                wait_for(at_head(store, first), 90)
                fillers: list[Path] = []
                tap.on(
                    "POST",
                    "/services/(create|[^/]+/update)",
                    lambda: tap.on("GET", "/tasks", lambda: fillers.append(fill(disk)), nth=2),
                    after=True,
                )  # the disk fills once the deploy is made, in the health wait
                head = stack(rig, "v2\n", "its end is refused")
                wait_for(lambda: "record(s) not written yet" in _store_check(agent), 90)
                answer = httpx.post(
                    f"http://127.0.0.1:{agent.port}/api/v1/apps/app/envs/dev/sync",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                )
                assert answer.status_code == 503, (answer.status_code, answer.text)
                agent.kill_9()
            for filler in fillers:
                filler.unlink()  # space again
            results = [o.result for o in ops_at(store, head)]
            assert results == ["Running"], results  # its end was never written
            status = store.get_status("app", "dev")
            assert status is not None and status.revision == first  # nor claimed
            started = time.monotonic()
            b = start(agents, tmp_path, "b", conf, swarm.docker_host)
            try:
                wait_for(at_head(store, head), 120)
            except AssertionError as exc:  # what b waited on: its log and the history
                ops = [(o.kind, (o.revision or "")[:8], o.result, o.reason, o.message)
                       for o in store.history(app="app", env="dev")]  # fmt: skip
                raise AssertionError(f"{exc}\noperations: {ops}\nstatus: "
                                     f"{store.get_status('app', 'dev')}\n"
                                     f"agent b:\n{b.output()[-6000:]}") from None  # fmt: skip
            took = time.monotonic() - started
            redone_once(store, head)
            assert len(object_names(docker_client, stack_name, "config")) == 1
            assert store.audit_events(actor="ops") == []  # the refused request did nothing
            ops = [(o.kind, (o.revision or "")[:8], o.result, o.reason)
                   for o in store.history(app="app", env="dev")]  # fmt: skip
            print(f"FAULT kill-9 with records in the journal: redone and recorded {took:.1f}s "
                  f"after the restart; {ops}")  # fmt: skip
        finally:
            store.close()


def _store_check(agent: AgentProcess) -> str:
    data = agent.ready()
    return str(data["checks"]["store"]["detail"]) if data else ""
