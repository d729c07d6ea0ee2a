"""Where the agent's no-op drift round spends CPU and memory, in process (issue 18).

``python -m bench.profile_round [APPS] [--profile] [--alloc]``: the no-op benchmark's
repository (bench/gitops.py ``many_stacks``: APPS apps x 5 idle services) committed to a
real Git repository, every app synced by a Reconciler on a SQLite store into a fake
swarm whose listings go through JSON as Docker's do (``JsonSwarm``: each service as an
engine of the bench's version returns it, ``Spec`` and ``PreviousSpec`` with the fields
Swarm fills in, encoded once and decoded on every read), then an Agent (no threads) and
its drift rounds: ``check_all`` and the checks it queues, as the timer runs them.

Prints per round the CPU (process time) and wall time, the heap (tracemalloc) after the
round and what holds it; ``--profile`` a cProfile of one steady round, ``--alloc`` the
top allocation sites. The engine's own time (scanning 5,000 services, writing the JSON
on its socket) is not here: bench/noop.py measures the round on a real swarm.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gitops import many_stacks
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.observed import ServiceState, TaskState
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.sync import Reconciler
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.fake import FakeSwarm
from gitswarm.swarm.listing import services_by_stack as listing_by_stack
from gitswarm.swarm.port import gc_paused, service_state, task_state

NS = 1_000_000_000


def _filled(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with what dockerd 20.10 fills in for a service of ``docker stack deploy``
    (the bench's idle services: healthcheck, limits, one network, no ports)."""
    template = spec["TaskTemplate"]
    container = {
        **template["ContainerSpec"],
        "Labels": {"com.docker.stack.namespace": spec["Labels"].get("com.docker.stack.namespace")},
        "Privileges": {"CredentialSpec": None, "SELinuxContext": None},
        "Init": True,
        "StopGracePeriod": NS,
        "Healthcheck": {
            "Test": ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:4000/health"],
            "Interval": NS,
            "Timeout": 3 * NS,
            "Retries": 3,
        },
        "DNSConfig": {},
        "Isolation": "default",
    }
    return {
        **spec,
        "TaskTemplate": {
            **template,
            "ContainerSpec": container,
            "Resources": {"Limits": {"NanoCPUs": 100_000_000, "MemoryBytes": 33554432}},
            "RestartPolicy": {"Condition": "any", "Delay": 5 * NS, "MaxAttempts": 0},
            "Placement": {"Platforms": [{"Architecture": "amd64", "OS": "linux"}]},
            "Networks": [{"Target": "k3v0qk1v9j2w8d4x5z6y7a8b9", "Aliases": ["svc"]}],
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "UpdateConfig": {
            "Parallelism": 1,
            "FailureAction": "pause",
            "Monitor": NS,
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        },
        "RollbackConfig": {
            "Parallelism": 1,
            "FailureAction": "pause",
            "Monitor": 5 * NS,
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        },
        "EndpointSpec": {"Mode": "vip"},
    }


@dataclass
class JsonSwarm(FakeSwarm):
    """A FakeSwarm whose service listings are decoded from JSON like docker-py's."""

    _text: tuple[Any, str] | None = field(default=None, repr=False)

    def _raw(self, svc: ServiceState) -> dict[str, Any]:
        spec = _filled(dict(svc.spec))
        return {
            "ID": f"{svc.id}x0qk1v9j2w8d4x5z6",
            "Version": {"Index": svc.version},
            "CreatedAt": "2026-12-01T19:01:02.123456789Z",
            "UpdatedAt": "2026-12-01T19:31:02.123456789Z",
            "Spec": spec,
            "PreviousSpec": spec,
            "Endpoint": {
                "Spec": {"Mode": "vip"},
                "VirtualIPs": [{"NetworkID": "k3v0qk1v9j2w8d4x5z6y7a8b9", "Addr": "10.0.1.2/24"}],
            },
        }

    def _text_of(self, services: list[ServiceState]) -> bytes:
        """The engine's answer listing ``services`` (encoded once per state of the swarm:
        the engine's work, not the agent's)."""
        key = tuple((s.id, s.version) for s in services)
        if self._text is None or self._text[0] != key:
            self._text = (key, json.dumps([self._raw(s) for s in services]))
        return self._text[1].encode()

    def services(self, stack: str) -> list[ServiceState]:
        listed = super().services(stack)
        decoded = [service_state(raw) for raw in json.loads(self._text_of(listed))]
        return [_with_id(s, orig.id) for s, orig in zip(decoded, listed, strict=True)]

    def services_by_stack(self) -> dict[str, list[ServiceState]]:
        listed = list(self._services.values())
        text = self._text_of(listed)
        ids = {s.name: s.id for s in listed}
        with gc_paused():  # as DockerSwarm.services_by_stack decodes its answer
            by_stack = listing_by_stack(text)
        for stack in by_stack.values():
            for service in stack:
                _with_id(service, ids[service.name])
        return by_stack

    def all_tasks(self) -> list[TaskState]:
        tasks = super().all_tasks()
        return [task_state(json.loads(json.dumps({"ID": t.id, "ServiceID": t.service_id})))
                for t in tasks]  # fmt: skip


def _with_id(service: ServiceState, sid: str) -> ServiceState:
    """The fake swarm's own id (its other methods look services up by it)."""
    object.__setattr__(service, "id", sid)
    return service


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def build(apps: int, root: Path) -> tuple[Agent, JsonSwarm, Store]:
    repo = root / "repo"
    for path, text in many_stacks(apps, 5).items():
        file = repo / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "-m", "apps")
    swarm = JsonSwarm()
    store = Store(str(root / "state.db"))
    source = RepoSource.open(str(repo))
    reconciler = Reconciler(source, store, lambda _t: swarm)
    settings = AgentSettings(events=False, poll_interval=3600, drift_interval=3600)
    agent = Agent(source=source, store=store, reconciler=reconciler, settings=settings)
    started = time.monotonic()
    agent.enqueue(("git",), TriggerRequest("poll"))  # the first syncs, as a new agent's
    agent.state.set_leader(True)
    agent.run_pending()
    failed = [s for s in store.all_statuses() if s.sync != "Synced"]
    print(f"{apps} apps deployed in {time.monotonic() - started:.0f} s; not synced: "
          f"{len(failed)} {failed[:1]}", flush=True)  # fmt: skip
    return agent, swarm, store


@dataclass
class GcTimes:
    """Time spent in cyclic garbage collections, per generation (``gc.callbacks``)."""

    seconds: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    _start: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.counts[info["generation"]] += 1


def one_round(agent: Agent) -> tuple[float, float, GcTimes]:
    times = GcTimes()
    gc.callbacks.append(times)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        agent.enqueue(("drift-all",), TriggerRequest("agent"))
        agent.run_pending()
    finally:
        gc.callbacks.remove(times)
    return time.process_time() - cpu, time.perf_counter() - wall, times


def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    apps = int(args[0]) if args else 1000
    os.environ.setdefault("GITSWARM_KEYS_DIR", tempfile.mkdtemp(prefix="gs-keys-"))
    with tempfile.TemporaryDirectory(prefix="gs-profile-") as tmp:
        if "--alloc" in argv:  # from the start: what the deploys leave held counts
            tracemalloc.start(8)
        agent, swarm, store = build(apps, Path(tmp))
        gc.collect()
        print(f"after deploy: RSS/peak {rss_mb()[0]:.0f}/{rss_mb()[1]:.0f} MB", flush=True)
        for i in range(6):
            cpu, wall, times = one_round(agent)
            collections = ", ".join(
                f"gen{g} {n}x {t * 1000:.0f} ms"
                for g, (n, t) in enumerate(zip(times.counts, times.seconds, strict=True))
            )
            print(f"round {i}: CPU {cpu:.3f} s, wall {wall:.3f} s, RSS {rss_mb()[0]:.0f} MB, "
                  f"GC {collections}, writes {swarm.writes}", flush=True)  # fmt: skip
        if "--profile" in argv:
            prof = cProfile.Profile()
            prof.enable()
            one_round(agent)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        if "--alloc" in argv:
            snap = tracemalloc.take_snapshot()
            for stat in snap.statistics("lineno")[:25]:
                print(stat)
            print("--- by traceback (top 8)")
            for stat in snap.statistics("traceback")[:8]:
                print(stat)
                for line in stat.traceback.format()[-12:]:
                    print("   ", line)
        print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
