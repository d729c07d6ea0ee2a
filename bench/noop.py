"""No-op cost: many stacks deployed, Git unchanged; what does one reconcile round cost?

A round is what the agent's timers cause when nothing happens: a poll of the remote
(``git ls-remote``; nothing new, so no fetch and no render) and the periodic drift check
of every app × environment (per app: observe its stack — services, configs, secrets — and
plan it against the render of the deployed revision, which the agent caches per
revision). The agent is a process of its own (bench/agentproc.py); the round is queued
there exactly as the timers queue it, and measured there: wall time until the agent is
idle again, CPU time (the process and the git/docker children it waited for), Docker
API requests and writes (``DockerSwarm.writes``: config/secret/service writes and
``docker stack deploy``). From outside, every service's ``Version.Index`` before and
after shows whether anything at all was written.

Sizes grow in one agent: 20 stacks are pushed and deployed, measured, then 30 more, ...
Each stack has 5 services with ``replicas: 0`` (full specs, no tasks: 500 of them fit
on a 2-core machine; a drift round's one read of every task per target finds none).

Also measured per size: a commit that changes no stack (a README): since issue 18 the
agent checks each app's inputs (the files and settings its last render read) and moves
the unchanged ones to the new revision without rendering them — the cost of a commit
to one app in a repository of many; the first drift round after it (served by the
renders the agent keeps); and a commit that changes one app (only it is rendered).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.agent import AgentProcess, Event
from bench.gitops import many_stacks, stack_file
from bench.lab import BenchLab
from bench.latency import agent_settings
from bench.observe import Observer
from bench.report import Sample, Section, Target, fmt, loadavg, ratio, signed
from bench.turns import Turns
from harness.gitserve import WorkingCopy

PER_STACK = 5
DEPLOY_TIMEOUT = 3600.0


def _synced(agent: AgentProcess, sha: str, count: int, since: int) -> list[Event]:
    """Wait until ``count`` apps are at ``sha``: a successful sync there, or moved there
    without one (their inputs unchanged: the "unchanged" event). Each event is looked at
    once (1,000 apps: a scan from ``since`` per app would cost the bench seconds of CPU
    beside the agent it measures)."""
    done: set[str] = set()
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    events: list[Event] = []
    position = since
    while len(done) < count:
        fresh = agent.wait_new(position, deadline - time.monotonic())
        position += len(fresh)
        for event in fresh:
            if (
                event["event"] not in ("sync", "unchanged")
                or event["revision"] != sha
                or event["app"] in done
            ):
                continue
            if event["event"] == "sync" and event["result"] != "Succeeded":
                raise RuntimeError(f"sync of {event['app']} failed: {event['message']}")
            done.add(event["app"])
            events.append(event)
    return events


def _requests(reply: Event) -> tuple[int, int]:
    reqs: dict[str, int] = reply.get("requests", {})
    reads = reqs.get("GET", 0) + reqs.get("HEAD", 0)
    return reads, sum(reqs.values()) - reads


def _commit_cost(
    agent: AgentProcess, wc: WorkingCopy, files: dict[str, str], message: str, apps: int
) -> tuple[dict[str, Any], list[Event], float]:
    """Push a commit, send its webhook, wait until all ``apps`` are synced at it and the
    agent is idle; wall time (push to last sync end), CPU, writes, renders."""
    sha = wc.commit(message, files=files)
    before = agent.command("stats")
    mark = agent.mark()
    wc.push()
    pushed = time.monotonic()
    agent.webhook(sha)
    _synced(agent, sha, apps, since=mark)
    agent.command("idle", quiet=0.2)
    events = agent.after(mark)
    last = max(e["end"] for e in events if e["event"] in ("sync", "unchanged"))
    after = agent.command("stats")
    cost = {
        "wall": last - pushed,
        "cpu": after["cpu"] - before["cpu"],
        "writes": after["writes"] - before["writes"],
        "renders": after["renders"] - before["renders"],
        "requests": {
            k: v - before["requests"].get(k, 0)
            for k, v in after["requests"].items()
            if v - before["requests"].get(k, 0)
        },
    }
    return cost, events, pushed


def _floor_deploy(lab: BenchLab, size: int) -> float:
    """The floor of a one-app commit: a bare ``docker stack deploy`` of the same change
    (svc0 busybox:1 -> busybox:2 in a 5-service stack beside the others), until it
    returns (replicas 0: the spec update is all there is to converge)."""
    stack = f"floor{size}"
    folder = lab.folder(f"noop-floor-{size}")
    times = []
    for tag in ("1", "2", "1", "2"):
        _, text = stack_file(stack, PER_STACK, tag=tag)
        path = folder / "stack.yml"
        path.write_text(text)
        started = time.monotonic()
        lab.docker("stack", "deploy", "-c", str(path), stack)
        times.append(time.monotonic() - started)
    lab.docker("stack", "rm", stack)
    return statistics.median(times[1:])  # the first one creates the stack


def _cli_seconds(args: Sequence[str], runs: int = 5) -> float:
    """Median wall time of a command (the CLI's start-up included)."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def _status_cost(state: Path, repo: Path) -> dict[str, float]:
    """``gitswarm status`` over every app of the agent's store (``repo``: a clone of the
    GitOps repository, as a user runs it), against ``python -c pass``."""
    exe = str(Path(sys.executable).with_name("gitswarm"))
    where = ["--state", str(state), "--repo", str(repo)]
    return {
        "status": _cli_seconds([exe, "status", *where]),
        "status_json": _cli_seconds([exe, "status", "--json", *where]),
        "python": _cli_seconds([sys.executable, "-c", "pass"]),
    }


def measure(
    lab: BenchLab,
    sizes: Sequence[int],
    rounds: int,
    *,
    rego: bool = False,
    status: bool = True,
    turns: Turns | None = None,
) -> list[dict[str, Any]]:
    """Per size: deploy (set-up: ``turns`` may run it at low priority, beside other work),
    then measure (with ``turns``' lock held, at full priority)."""
    turns = turns or Turns()
    observer = Observer(lab.swarm())
    remote = lab.remote("noop")
    wc = remote.clone()
    agent: AgentProcess | None = None
    out: list[dict[str, Any]] = []
    try:
        for size in sizes:
            started = time.monotonic()
            sha = wc.commit(f"{size} stacks", files=many_stacks(size, PER_STACK, rego=rego))
            wc.push()
            if agent is None:
                agent = AgentProcess(lab.folder("agent-noop"), remote.url, agent_settings())
                agent.start()  # as leader it checks Git at once: the first syncs
                _synced(agent, sha, size, since=0)
            else:
                mark = agent.mark()
                agent.webhook(sha)
                _synced(agent, sha, size, since=mark)
            agent.command("idle", quiet=2.0)
            deployed = time.monotonic() - started
            print(f"  {size} stacks deployed and idle after {deployed:.0f} s", flush=True)
            with turns.measured(f"{size} apps"):
                load_before = loadavg()
                figures = _measure_size(lab, agent, observer, wc, size, rounds, status=status)
                figures["load"] = (load_before, loadavg())
            figures["deploy_seconds"] = deployed
            out.append(figures)
    finally:
        if agent is not None:
            agent.stop()
    return out


def _measure_size(
    lab: BenchLab,
    agent: AgentProcess,
    observer: Observer,
    wc: WorkingCopy,
    size: int,
    rounds: int,
    *,
    status: bool,
) -> dict[str, Any]:
    versions = observer.versions()
    # A commit that changes no stack: no app's inputs change (nothing rendered).
    commit, _, _ = _commit_cost(
        agent, wc, {"README.md": f"{size} stacks\n"}, f"docs for {size}", size
    )
    # The first drift round after it (the kept renders serve it); then steady rounds.
    first = agent.command("round")
    mark = agent.mark()
    steady = [agent.command("round") for _ in range(rounds)]
    polls = [e for e in agent.after(mark) if e["event"] == "poll"]
    changed = sorted(name for name, v in observer.versions().items() if versions.get(name) != v)
    # A commit that changes one service of the last app (the last in the queue).
    last_app = f"n{size:03d}"
    path, text = stack_file(last_app, PER_STACK, tag="2")
    versions = observer.versions()
    one, events, pushed = _commit_cost(
        agent, wc, {path: text}, f"{last_app}: svc0 on busybox:2", size
    )
    deploy = next(e for e in events if e["event"] == "deploy" and e["stack"] == last_app)
    synced = next(e for e in events if e["event"] == "sync" and e["app"] == last_app)
    one["deploy"] = deploy["start"] - pushed
    one["synced"] = synced["end"] - pushed
    one["rendered"] = sorted(e["app"] for e in events if e["event"] == "sync")
    one["changed"] = sorted(
        name for name, v in observer.versions().items() if versions.get(name) != v
    )
    one["floor"] = _floor_deploy(lab, size)
    stats = agent.command("stats")
    return {
        "stacks": size,
        "services": size * PER_STACK,
        "commit": commit,
        "first": first,
        "steady": steady,
        "fetches": sum(1 for p in polls if p["fetched"]),
        "polls": len(polls),
        "changed": changed,
        "one": one,
        "status": (
            _status_cost(lab.folder("agent-noop") / "state.db", wc.path) if status else None
        ),
        "rss": stats["VmRSS"],
        "peak": stats["VmHWM"],
        "children": stats.get("children", 0.0),
        "heap": {k: v for k, v in stats.items() if k.startswith(("c_", "py_"))},
    }


def run(
    lab: BenchLab,
    sizes: Sequence[int],
    rounds: int,
    *,
    rego: bool = False,
    status: bool = True,
    turns: Turns | None = None,
) -> Section:
    started = time.monotonic()
    results = measure(lab, sizes, rounds, rego=rego, status=status, turns=turns)
    section = Section(
        "3. No-op reconcile cost",
        f"Stacks of {PER_STACK} services deployed by gitswarm, Git unchanged. One round = the "
        f"agent's poll of the remote + its drift check of every app. Medians of {rounds} "
        "steady rounds [min..max]; API reads = Docker GETs per round; writes = gitswarm's "
        "own count of its Docker writes (DockerSwarm.writes: config/secret/service writes and "
        "`docker stack deploy`) / non-GET Engine API requests, both over the steady rounds, "
        "the first round and the no-deploy commit; changed = services whose Version.Index "
        "moved during the rounds and the no-deploy commit before them.",
        header=(
            "stacks",
            "round wall",
            "round CPU",
            "API reads",
            "writes / non-GET",
            "changed",
            "agent RSS / peak",
            "load average",
        ),
    )
    for r in results:
        steady: list[Event] = r["steady"]
        wall = Sample.of(s["wall"] for s in steady)
        cpu = Sample.of(s["cpu"] for s in steady)
        reads = Sample.of(_requests(s)[0] for s in steady)
        section.rows.append(
            (
                f"{r['stacks']} x {PER_STACK}",
                wall.text(),
                cpu.text(spread=False),
                f"{reads.median:.0f}",
                f"{_writes(r)} / {_non_get(r)}",
                str(len(r["changed"])),
                f"{r['rss']:.0f} / {r['peak']:.0f} MB"
                + (f" + Rego {r['children']:.0f} MB" if r.get("children") else ""),
                _load_text(r),
            )
        )
    rows: list[tuple[str, ...]] = []
    for r in results:
        first, commit, one = r["first"], r["commit"], r["one"]
        rows.append(
            (
                str(r["stacks"]),
                f"{fmt(commit['wall'])}, CPU {fmt(commit['cpu'])}, {commit['writes']} writes",
                f"{fmt(first['wall'])}, {first['renders']} renders",
                fmt(one["deploy"]),
                f"{fmt(one['synced'])} (floor {fmt(one['floor'])}, "
                f"{signed(one['synced'] - one['floor'])}, "
                f"{ratio(one['synced'], one['floor'])})",
                f"{one['renders']}",
                f"{one['writes']} / {len(one['changed'])}",
            )
        )
    section.tables.append(
        (
            "A commit in a repository of N apps: apps whose inputs changed are synced "
            "(render, validate, plan), the others move to the new revision unrendered. 'no "
            "stack changed': a README commit, from the push until every app is at it; then "
            "the first drift round after it. 'one service changed': svc0 of the last "
            "app in the queue (nNNN) gets busybox:2 — from the push to that app's deploy "
            "start and sync end, against the floor (a bare `docker stack deploy` of the same "
            "change to a 5-service stack on the same swarm); renders: apps rendered for that "
            "commit; writes / services whose Version.Index moved.",
            (
                "apps",
                "no stack changed",
                "1st drift round after",
                "1 changed -> deploy",
                "-> synced",
                "renders",
                "writes / changed",
            ),
            rows,
        )
    )
    measured = [r for r in results if r["status"] is not None]
    status_rows: list[tuple[str, ...]] = [
        (
            str(r["stacks"]),
            fmt(r["status"]["status"]),
            fmt(r["status"]["status_json"]),
            fmt(r["status"]["python"]),
            ratio(r["status"]["status"], r["status"]["python"]),
        )
        for r in measured
    ]
    if status_rows:
        section.tables.append(
            (
                "`gitswarm status` over every app of the agent's store (SQLite), a process "
                "started each time, median of 5; the floor is `python -c pass`.",
                ("apps", "status", "status --json", "python -c pass", "ratio"),
                status_rows,
            )
        )
    if len(results) > 1:
        small, big = results[0], results[-1]

        def cpu_of(r: dict[str, Any]) -> float:
            return Sample.of(s["cpu"] for s in r["steady"]).median

        def wall_of(r: dict[str, Any]) -> float:
            return Sample.of(s["wall"] for s in r["steady"]).median

        growth: list[tuple[str, float, float, str]] = [
            ("no-op round CPU", cpu_of(small), cpu_of(big), "s"),
            ("no-op round wall", wall_of(small), wall_of(big), "s"),
            ("agent peak RSS", small["peak"], big["peak"], "MB"),
            ("README commit (no app rendered)", small["commit"]["wall"], big["commit"]["wall"],
             "s"),
            ("README commit, agent CPU", small["commit"]["cpu"], big["commit"]["cpu"], "s"),
            ("1 changed -> synced", small["one"]["synced"], big["one"]["synced"], "s"),
            ("1 changed: the floor", small["one"]["floor"], big["one"]["floor"], "s"),
            (
                "1 changed: synced / floor",
                small["one"]["synced"] / small["one"]["floor"],
                big["one"]["synced"] / big["one"]["floor"],
                "x",
            ),
        ]  # fmt: skip
        if small["status"] is not None and big["status"] is not None:
            growth.append(
                ("gitswarm status", small["status"]["status"], big["status"]["status"], "s")
            )
        section.tables.append(
            (
                f"Growth from {small['stacks']} to {big['stacks']} apps "
                f"({big['stacks'] / small['stacks']:.0f}x the apps).",
                ("figure", str(small["stacks"]), str(big["stacks"]), "growth"),
                [(name, fmt(a, u), fmt(b, u), ratio(b, a)) for name, a, b, u in growth],
            )
        )
    for r in results:
        section.notes.append(
            f"{r['stacks']} stacks: deployed (from the push to the agent idle) in "
            f"{r['deploy_seconds']:.0f} s; steady rounds: {r['polls']} polls, "
            f"{r['fetches']} fetches, {sum(s['renders'] for s in r['steady'])} renders; "
            f"apps synced for the one-app commit: {', '.join(r['one']['rendered'])}."
        )
    if results:
        big = results[-1]
        big_wall = Sample.of(s["wall"] for s in big["steady"]).median
        writes = sum(_writes(r) for r in results)
        non_get = sum(_non_get(r) for r in results)
        changed = sum(len(r["changed"]) for r in results)
        peak = max(r["peak"] for r in results)
        quiet = all(r["fetches"] == 0 for r in results) and all(
            s["renders"] == 0 for r in results for s in r["steady"]
        )
        one_only = all(
            r["one"]["writes"] == 1 and r["one"]["changed"] == [f"n{r['stacks']:03d}_svc0"]
            for r in results
        )
        section.targets += [
            Target(
                f"no-op round, {big['stacks']} stacks x {PER_STACK}",
                "< 1 s",
                fmt(big_wall),
                big_wall < 1.0 if big["stacks"] >= 100 else None,
                note="" if big["stacks"] >= 100 else "fewer than 100 stacks measured",
            ),
            Target(
                "Docker writes in no-op rounds and no-deploy commits",
                "0",
                f"{writes} writes, {non_get} non-GET requests, {changed} services changed",
                writes == 0 and non_get == 0 and changed == 0,
            ),
            Target(
                "a poll with nothing new",
                "no fetch, no render",
                "no fetch, no render" if quiet else "fetched or rendered",
                quiet,
            ),
            Target(
                "a commit changing one service",
                "1 deploy, no other service written",
                "yes"
                if one_only
                else "no: "
                + "; ".join(
                    f"{r['one']['writes']} writes, changed {r['one']['changed']}" for r in results
                ),
                one_only,
            ),
            Target("agent memory (peak RSS)", "< 150 MB", f"{peak:.0f} MB", peak < 150),
        ]
        one = big["one"]
        big_cpu = Sample.of(s["cpu"] for s in big["steady"]).median
        if big["stacks"] >= 1000:
            section.targets += [
                Target(
                    f"no-op round CPU, {big['stacks']} apps x {PER_STACK}",
                    "< 1 s",
                    fmt(big_cpu),
                    big_cpu < 1.0,
                ),
                Target(
                    f"agent memory at {big['stacks']} apps", "< 200 MB", f"{big['peak']:.0f} MB",
                    big["peak"] < 200,
                ),
            ]  # fmt: skip
        section.targets += [
            Target(
                f"a commit to one app of {big['stacks']}: apps rendered",
                "only those whose inputs changed (1)",
                str(one["renders"]),
                one["renders"] == 1,
            ),
            Target(
                f"a commit to one app of {big['stacks']}: synced",
                "within 1 s of the floor",
                signed(one["synced"] - one["floor"]),
                one["synced"] - one["floor"] <= 1.0,
            ),
        ]
        if big["status"] is not None:
            status = big["status"]["status"]
            section.targets.append(
                Target(f"gitswarm status over {big['stacks']} apps", "< 1 s", fmt(status),
                       status < 1.0)
            )  # fmt: skip
    section.data = {"sizes": results}
    section.seconds = time.monotonic() - started
    return section


def _load_text(r: dict[str, Any]) -> str:
    """The 1-minute load average at the start and at the end of the measured part."""
    (start, _, _), (end, _, _) = r["load"]
    return f"{start:.1f} -> {end:.1f}"


def _non_get(r: dict[str, Any]) -> int:
    """Engine API requests other than GET/HEAD in the rounds and the no-deploy commit
    (docker-py's, counted by method; the CLI's are in ``writes``)."""
    replies = [*r["steady"], r["first"], r["commit"]]
    return sum(_requests(x)[1] for x in replies)


def _writes(r: dict[str, Any]) -> int:
    steady: list[Event] = r["steady"]
    return int(sum(s["writes"] for s in steady) + r["first"]["writes"] + r["commit"]["writes"])
