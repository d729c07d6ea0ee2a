"""The gitswarm agent under test, in a process of its own: ``python -m bench.agentproc``.

It is put together exactly as ``gitswarm serve`` does it (cli/serve.py ``run_agent``:
RepoSource, Store, Reconciler, Agent, the HTTP API with GitHub webhooks), so its timing,
CPU and memory are the real agent's, undisturbed by the benchmark's own polling. Only
measuring points are added, all here in bench/:

- the Docker clients (one per target and thread, like ``SwarmPool``) time each
  ``docker stack deploy`` and count writes (``DockerSwarm.writes``) and HTTP requests
  to the engine by method;
- the reconciler reports when each sync/heal/rollback starts and ends, with its result;
- the store reports drift records and the apps a commit left unchanged (not synced);
  the source reports each poll of the remote; the
  agent reports each trigger (webhook or API).

Protocol: the first argument is a JSON config. One JSON object per line on stdout:
events ``{"event": ..., "t": <time.monotonic()>, ...}`` (CLOCK_MONOTONIC is one clock
for every process of the machine). Commands on stdin, one JSON object per line:
``idle`` (wait until the agent has been idle ``quiet`` seconds), ``round`` (one no-op
reconcile round, measured), ``stats``, ``stop``. End of stdin stops the agent.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from gitswarm.api import create_app, serve_in_thread, settings_from_mapping
from gitswarm.model.agent import TriggerRequest
from gitswarm.model.config import ResolveImage, Target
from gitswarm.notify import Notifier
from gitswarm.reconcile.agent import Agent, AgentSettings
from gitswarm.reconcile.allocator import Allocator
from gitswarm.reconcile.metrics import Metrics
from gitswarm.reconcile.sync import Reconciler, Rendered, SyncOutcome, SyncRequest
from gitswarm.source.repo import RepoSource
from gitswarm.store import Store
from gitswarm.swarm.client import DockerSwarm
from gitswarm.swarm.pool import SwarmPool

_out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "t": time.monotonic(), **fields})
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class MeteredSwarm(DockerSwarm):
    """A ``DockerSwarm`` that times ``docker stack deploy`` and counts engine requests."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.requests: Counter[str] = Counter()
        self.api.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests[str(response.request.method)] += 1

    def deploy(self, stack: str, compose_yaml: str, *, resolve_image: ResolveImage) -> None:
        started = time.monotonic()
        emit("deploy-start", stack=stack)
        try:
            super().deploy(stack, compose_yaml, resolve_image=resolve_image)
        finally:
            emit("deploy", stack=stack, start=started, end=time.monotonic())


class MeteredPool(SwarmPool):
    """gitswarm's ``SwarmPool`` (one client per target and thread), metered."""

    def __init__(self) -> None:
        super().__init__(MeteredSwarm)

    def writes(self) -> int:
        return sum(c.writes for c in self.clients())

    def requests(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for client in self.clients():
            if isinstance(client, MeteredSwarm):
                total.update(client.requests)
        return dict(total)


@dataclass
class TimedReconciler(Reconciler):
    renders: int = field(default=0)

    def render(
        self,
        app_name: str,
        env_name: str,
        revision: str | None,
        *,
        verify: bool = False,
        override_window: str | None = None,
        redeploy: bool = False,
    ) -> Rendered:
        self.renders += 1
        return super().render(
            app_name,
            env_name,
            revision,
            verify=verify,
            override_window=override_window,
            redeploy=redeploy,
        )

    def sync(self, req: SyncRequest) -> SyncOutcome:
        started = time.monotonic()
        outcome = super().sync(req)
        emit(
            "sync",
            app=req.app,
            env=req.env,
            kind=req.kind,
            revision=outcome.revision,
            result=outcome.result,
            reason=outcome.reason,
            message=outcome.message,
            start=started,
            end=time.monotonic(),
        )
        return outcome


class TimedStore(Store):
    def record_operation(self, *args: Any, **kwargs: Any) -> int:
        op_id = super().record_operation(*args, **kwargs)
        kind, app, env = args[:3]
        emit("record", kind=kind, app=app, env=env, message=str(kwargs.get("message", "")))
        return op_id

    def start_operation(self, *args: Any, **kwargs: Any) -> int:
        op_id = super().start_operation(*args, **kwargs)
        kind, app, env = args[:3]
        emit("op-start", kind=kind, app=app, env=env, revision=kwargs.get("revision"))
        return op_id

    def advance_revisions(self, moves: Any, revision: str, message: str) -> set[tuple[str, str]]:
        moved = super().advance_revisions(moves, revision, message)
        now = time.monotonic()
        for app, env in sorted(moved):  # apps whose inputs did not change: not synced
            emit("unchanged", app=app, env=env, revision=revision, end=now)
        return moved


class TimedSource(RepoSource):
    def poll(self) -> tuple[str, bool]:
        started = time.monotonic()
        head, fetched = super().poll()
        emit("poll", head=head, fetched=fetched, start=started, end=time.monotonic())
        return head, fetched


class TimedAgent(Agent):
    def trigger(self, request: TriggerRequest) -> dict[str, Any]:
        emit("trigger", via=request.trigger, revision=request.revision)
        return super().trigger(request)


def memory() -> dict[str, float]:
    """Resident memory of this process, MB: now (VmRSS) and its peak (VmHWM); and of its
    live children (``children``: the Rego sandbox's workers)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    page = os.sysconf("SC_PAGE_SIZE")
    out["children"] = sum(int(s.split()[1]) * page for s in _children("statm")) / 2**20
    out.update(heap())
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # glibc >= 2.33 malloc.h, all size_t
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap() -> dict[str, float]:
    """What the resident memory is made of, MB (issue 18): Python's object allocator
    (``py_arenas``: its 1 MiB arenas, ``py_used``: bytes in live objects' blocks) and the C
    allocator (glibc ``mallinfo2``: ``c_used`` in use, ``c_free`` freed but kept in its
    arenas, ``c_mmap`` large blocks mapped on their own). Empty where not available."""
    out: dict[str, float] = {}
    mallinfo2 = getattr(ctypes.CDLL(None), "mallinfo2", None)
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
        info = mallinfo2()
        out |= {"c_used": info.uordblks / 2**20, "c_free": info.fordblks / 2**20}
        out["c_mmap"] = info.hblkhd / 2**20
    with tempfile.TemporaryFile() as sink:  # sys._debugmallocstats writes to C's stderr
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode(errors="replace")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        key = key.strip()
        if key == "# arenas allocated current":
            out["py_arenas"] = float(value.replace(",", ""))  # 1 MiB each (3.11)
        elif key == "# bytes in allocated blocks":
            out["py_used"] = int(value.replace(",", "")) / 2**20
    return out


def cpu_seconds() -> float:
    """CPU time of this process, of the children it waited for (git, docker CLI), and of
    its live children (the Rego sandbox's workers, which live on between evaluations)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = os.sysconf("SC_CLK_TCK")
    live = 0.0
    for stat in _children("stat"):
        fields = stat.rsplit(")", 1)[1].split()
        live += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + live


def _children(name: str) -> list[str]:
    """/proc/<pid>/``name`` of each live child of this process."""
    out = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                out.append(Path(f"/proc/{pid}/{name}").read_text())
    return out


class Driver:
    """Runs the commands of stdin against the agent."""

    def __init__(self, agent: TimedAgent, pool: MeteredPool, reconciler: TimedReconciler):
        self.agent, self.pool, self.reconciler = agent, pool, reconciler

    def _wait_idle(self, quiet: float, timeout: float) -> bool:
        """Idle (nothing pending or running) for ``quiet`` seconds in a row."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.agent.idle():
                idle_since = idle_since or now
                if now - idle_since >= quiet:
                    return True
            else:
                idle_since = None
            time.sleep(0.02)
        return False

    def idle(self, quiet: float = 1.0, timeout: float = 600.0) -> dict[str, Any]:
        return {"ok": self._wait_idle(quiet, timeout)}

    def round(self, git: bool = True, drift: bool = True, timeout: float = 300.0) -> dict[str, Any]:
        """One reconcile round with nothing new, as the agent's timers cause it: a poll
        of the remote and the periodic drift check of every app × env. Wall time is
        from queueing both to the agent being idle again (woken by the agent's own
        condition, so no polling of ours adds CPU)."""
        agent = self.agent
        self._wait_idle(0.2, timeout)
        writes, reqs = self.pool.writes(), self.pool.requests()
        renders = self.reconciler.renders
        cpu = cpu_seconds()
        started = time.monotonic()
        if git:
            agent.enqueue(("git",), TriggerRequest("poll"))
        if drift:
            agent.enqueue(("drift-all",), TriggerRequest("agent"))
        done = agent.wait_idle(timeout)  # woken whenever a task of the agent ends
        wall = time.monotonic() - started
        cpu = cpu_seconds() - cpu
        after = self.pool.requests()
        return {
            "ok": done,
            "wall": wall,
            "cpu": cpu,
            "writes": self.pool.writes() - writes,
            "requests": {k: v - reqs.get(k, 0) for k, v in after.items() if v - reqs.get(k, 0)},
            "renders": self.reconciler.renders - renders,
            **memory(),
        }

    def stats(self) -> dict[str, Any]:
        return {
            "writes": self.pool.writes(),
            "requests": self.pool.requests(),
            "renders": self.reconciler.renders,
            "cpu": cpu_seconds(),
            **memory(),
        }


def main() -> int:
    # As `gitswarm serve`: before any thread. BENCH_MALLOC=off: glibc's defaults (the
    # control run of issue 18's figures, bench/README.md).
    off = os.environ.get("BENCH_MALLOC") == "off"
    allocator = Allocator() if off else Allocator.of_process()
    allocator.cap_arenas()
    config = json.loads(sys.argv[1])
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    workdir = Path(config["workdir"])
    source = TimedSource.open(config["repo"], cache=workdir / "cache")
    store = TimedStore(str(workdir / "state.db"))
    notifier = Notifier({})
    metrics = Metrics()
    pool = MeteredPool()
    reconciler = TimedReconciler(source=source, store=store, swarm_for=pool, notifier=notifier)
    agent = TimedAgent(
        source=source,
        store=store,
        reconciler=reconciler,
        settings=AgentSettings(**config.get("settings", {})),
        notifier=notifier,
        metrics=metrics,
        after_burst=allocator.trim,
    )
    api = settings_from_mapping(
        {"webhooks": {"github": config["webhook_secret"]}}, audit=store.audit, deliveries=store
    )
    handle = serve_in_thread(create_app(agent, api, metrics), "127.0.0.1", 0)
    agent.start()
    leader = agent.wait_leader(30)
    emit("ready", url=handle.url, pid=os.getpid(), leader=leader, **memory())
    driver = Driver(agent, pool, reconciler)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            name = command.pop("cmd")
            ident = command.pop("id", None)
            if name == "stop":
                break
            result = getattr(driver, name)(**command)
            emit("reply", id=ident, cmd=name, **result)
    finally:
        handle.stop()
        agent.stop(timeout=30)
        notifier.close()
        store.close()
        emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
