"""Drift: someone runs ``docker service scale web=N`` by hand; how soon does gitswarm
report it, and how soon is it healed? Two manual changes: scaling up to 3 (healing
removes the extra tasks, the first one runs on) and scaling down to 0, an outage
(healing has to start a task and wait for its healthcheck).

- floor: the operator redeploys at once (``docker stack deploy`` of the same file right
  after the scale command returned); timed from the redeploy's start until ``web`` is
  back at 1 replica and converged;
- gitswarm (self_heal on, watching Docker events; the periodic drift check is set to 300 s
  so the figure is the event path's): from the scale command returning until the drift
  is recorded in the store (what ``gitswarm status``/``history`` show), until the heal
  sync ends, and until the swarm is seen converged at 1 replica;
- the naive agent: it compares commit ids only, so it never sees drift; shown by
  scaling its stack and looking again after two of its loops.
"""

from __future__ import annotations

import time
from typing import Any

from bench.agent import AgentProcess
from bench.gitops import compose, one_stack, service
from bench.lab import BenchLab, image
from bench.latency import SETTLE, TIMEOUT, agent_settings
from bench.naive import NaiveAgent
from bench.observe import Observer, utcnow
from bench.report import Sample, Section, Target, fmt, median, signed

SCALES = (3, 0)


def services() -> dict[str, Any]:
    return {"web": service("1"), "api": service("1")}


def scale(lab: BenchLab, stack: str, replicas: int) -> float:
    """``docker service scale -d STACK_web=N``, as typed by hand; the wall-clock time it
    was typed, for ``Observer.changed_at``: the moment of the change is the engine's
    event of it, not the CLI's start or exit."""
    typed = time.time()
    lab.docker("service", "scale", "-d", f"{stack}_web={replicas}")
    return typed


def measure_floor(
    lab: BenchLab, observer: Observer, runs: int, replicas: int
) -> list[dict[str, float]]:
    stack = f"drift-floor-{replicas}"
    path = lab.folder(stack) / "stack.yml"
    path.write_text(compose(services()))
    since = utcnow()
    lab.docker("stack", "deploy", "-c", str(path), stack)
    observer.converged(stack, "web", image=image("1"), replicas=1, since=since, timeout=TIMEOUT)
    out = []
    for _ in range(runs):
        time.sleep(SETTLE)
        typed = scale(lab, stack, replicas)
        since = utcnow()
        started = time.monotonic()
        lab.docker("stack", "deploy", "-c", str(path), stack)
        done = observer.converged(stack, "web", replicas=1, since=since, timeout=TIMEOUT)
        changed = observer.changed_at(f"{stack}_web", typed)
        out.append({"redeploy": done - started, "healed": done - changed})
    return out


def measure_gitswarm(
    lab: BenchLab, observer: Observer, runs: int, replicas: int
) -> list[dict[str, float]]:
    stack = f"drift-gs-{replicas}"
    remote = lab.remote(stack)
    wc = remote.clone()
    wc.commit("initial", files=one_stack(stack, services()))
    wc.push()
    agent = AgentProcess(lab.folder(f"agent-{stack}"), remote.url, agent_settings())
    since = utcnow()
    agent.start()
    try:
        agent.wait(lambda e: e["event"] == "sync" and e["result"] == "Succeeded", TIMEOUT, since=0)
        observer.converged(stack, "web", replicas=1, since=since, timeout=TIMEOUT)
        out = []
        for _ in range(runs):
            agent.command("idle", quiet=SETTLE)
            mark = agent.mark()
            typed = scale(lab, stack, replicas)
            since = utcnow()
            done = observer.converged(stack, "web", replicas=1, since=since, timeout=TIMEOUT)
            changed = observer.changed_at(f"{stack}_web", typed)
            reported = agent.wait(
                lambda e: e["event"] == "record" and e["kind"] == "drift", TIMEOUT, since=mark
            )
            healed = agent.wait(
                lambda e: e["event"] == "sync" and e["kind"] == "heal", TIMEOUT, since=mark
            )
            if healed["result"] != "Succeeded":
                raise RuntimeError(f"gitswarm's heal failed: {healed['message']}")
            deploy = next(e for e in agent.after(mark) if e["event"] == "deploy")
            out.append(
                {
                    "reported": reported["t"] - changed,
                    "heal_started": deploy["start"] - changed,
                    "healed": done - changed,
                    "heal_reported": healed["end"] - changed,
                }
            )
        return out
    finally:
        agent.stop()


def naive_never(lab: BenchLab, observer: Observer, interval: float) -> tuple[int | None, float]:
    stack = "drift-naive"
    remote = lab.remote(stack)
    wc = remote.clone()
    wc.commit("initial", files=one_stack(stack, services()))
    wc.push()
    naive = NaiveAgent(lab.folder("naive-drift"), remote.url, stack, interval)
    since = utcnow()
    naive.start()
    try:
        naive.wait_line("deployed ", TIMEOUT, since=0)
        observer.converged(stack, "web", replicas=1, since=since, timeout=TIMEOUT)
        mark = naive.mark()
        typed = scale(lab, stack, SCALES[0])
        changed = observer.changed_at(f"{stack}_web", typed)
        waited = 2 * interval + 1.0
        time.sleep(waited)
        loops = sum(1 for _, line in naive.lines[mark:] if line == "syncing")
        if loops < 2:
            naive.wait_line("syncing", TIMEOUT, since=mark)
        return observer.replicas(stack, "web"), time.monotonic() - changed
    finally:
        naive.stop()


def run(lab: BenchLab, runs: int, interval: float = 5.0) -> Section:
    started = time.monotonic()
    observer = Observer(lab.swarm())
    floor = {n: measure_floor(lab, observer, runs, n) for n in SCALES}
    gitswarm = {n: measure_gitswarm(lab, observer, runs, n) for n in SCALES}
    naive_replicas, naive_waited = naive_never(lab, observer, interval)

    def col(rows: list[dict[str, float]], key: str) -> Sample:
        return Sample.of(r[key] for r in rows)

    section = Section(
        "2. Drift: detection and heal",
        "`docker service scale -d web=N` by hand on a 1-replica service (N=3: more than Git "
        "says; N=0: an outage). Medians of "
        f"{runs} runs [min..max] from the change (the engine's event of the service update).",
        header=(
            "contender",
            "scale to",
            "-> reported",
            "-> heal started",
            "-> healed",
            "minus redeploy",
        ),
    )
    medians: dict[str, dict[str, float]] = {}
    for n in SCALES:
        redeploy = col(floor[n], "redeploy").median
        healed = col(gitswarm[n], "healed")
        reported = col(gitswarm[n], "reported")
        section.rows.append(
            (
                "floor: bare redeploy right after",
                str(n),
                "-",
                "0 (by hand)",
                col(floor[n], "redeploy").text() + " from its start",
                "",
            )
        )
        section.rows.append(
            (
                "gitswarm (events, self_heal)",
                str(n),
                reported.text(),
                col(gitswarm[n], "heal_started").text(),
                healed.text(),
                signed(healed.median - redeploy),
            )
        )
        medians[str(n)] = {
            "redeploy": redeploy,
            "reported": reported.median,
            "healed": healed.median,
            "heal_reported": median(r["heal_reported"] for r in gitswarm[n]),
        }
    section.rows.append(
        (f"naive agent, sleep {interval:g} s", str(SCALES[0]), "never", "never", "never", "")
    )
    section.notes.append(
        f"naive agent: {SCALES[0]} replicas {naive_waited:.0f} s after the scale (two loops "
        "later): it compares commit ids only, so a manual change stays until the next "
        "commit, and even then `docker stack deploy` only touches what the file says "
        "differs from the last deploy."
        if naive_replicas == SCALES[0]
        else f"naive agent: replicas {naive_replicas} after {naive_waited:.0f} s (unexpected)"
    )
    section.notes.append(
        "gitswarm reports when the drift record is in the store (`gitswarm status` and "
        "`history` show it) and heals at once (self_heal); its heal sync ends, as it "
        "reports it, "
        + ", ".join(f"{fmt(m['heal_reported'])} (scale to {n})" for n, m in medians.items())
        + " after the change (health is checked every 250 ms). Scale to 0 is slow for "
        "everyone: the killed task takes seconds to stop and the new one must pass its "
        "healthcheck."
    )
    worst_reported = max(m["reported"] for m in medians.values())
    worst_gap = max(m["healed"] - m["redeploy"] for m in medians.values())
    section.targets += [
        Target("drift reported (worst case)", "< 2 s", fmt(worst_reported), worst_reported < 2.0),
        Target(
            "drift healed, minus a bare redeploy (worst case)",
            "< 1 s",
            signed(worst_gap),
            worst_gap < 1.0,
        ),
    ]
    section.data = {
        "floor": floor,
        "gitswarm": gitswarm,
        "naive": {"replicas_after": naive_replicas, "seconds": naive_waited},
        "medians": medians,
    }
    section.seconds = time.monotonic() - started
    return section
