"""Push-to-running latency: a commit changes one service's image, how soon does it run?

Stack: ``web`` (the service whose image flips between busybox:1 and busybox:2 of the lab
registry) and ``api`` (unchanged). Four contenders, one after the other on the same
swarm, each on a stack of its own and warmed up by one untimed deploy:

- floor: ``docker stack deploy -c stack.yml`` of the changed file, typed by hand; timed
  from the command's start;
- gitswarm + webhook: the commit is pushed to the served remote (harness/gitserve.py,
  smart HTTP), then a signed GitHub push webhook is sent, as a forge does after a push;
- gitswarm polling every ``interval`` seconds (no jitter, no webhook);
- the naive agent (bench/naive-agent.sh) sleeping ``interval`` seconds between loops.

Times run from the moment ``git push`` returned. "Converged" is seen by one outside
observer for all (bench/observe.py); gitswarm also reports its own end of sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.agent import AgentProcess, Event
from bench.gitops import COMPOSE, compose, one_stack, service
from bench.lab import BenchLab, image
from bench.naive import NaiveAgent
from bench.observe import Observer, utcnow
from bench.report import Sample, Section, Target, fmt, median, ratio, signed

SETTLE = 0.5  # seconds between runs, so the previous update's last task has stopped
TIMEOUT = 120.0


def services(tag: str) -> dict[str, Any]:
    return {"web": service(tag), "api": service("1")}


def tag_of(run: int) -> str:
    return "2" if run % 2 == 0 else "1"  # every stack starts on busybox:1


def agent_settings(**over: Any) -> dict[str, Any]:
    """The agent's settings for the benchmarks: timers that stay out of the way unless a
    benchmark is about them, and no heal-loop guard (it would stop healing after 3)."""
    return {"poll_interval": 300.0, "drift_interval": 300.0, "heal_limit": 100000, **over}


def _is_sync(sha: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "sync" and e["kind"] == "sync" and e["revision"] == sha


def measure_floor(lab: BenchLab, observer: Observer, runs: int) -> list[dict[str, float]]:
    stack = "lat-floor"
    path = lab.folder("floor") / "stack.yml"

    def deploy(tag: str) -> tuple[float, float]:
        path.write_text(compose(services(tag)))
        started = time.monotonic()
        lab.docker("stack", "deploy", "-c", str(path), stack)
        return started, time.monotonic()

    since = utcnow()
    deploy("1")
    observer.converged(stack, "web", image=image("1"), since=since, timeout=TIMEOUT)
    out = []
    for run in range(runs):
        time.sleep(SETTLE)
        tag = tag_of(run)
        since = utcnow()
        started, returned = deploy(tag)
        done = observer.converged(stack, "web", image=image(tag), since=since, timeout=TIMEOUT)
        out.append({"deploy": 0.0, "deploy_cmd": returned - started, "converged": done - started})
    return out


def measure_gitswarm(
    lab: BenchLab, observer: Observer, runs: int, *, webhook: bool, interval: float
) -> list[dict[str, float]]:
    mode = "webhook" if webhook else "poll"
    stack = f"lat-{mode}"
    remote = lab.remote(stack)
    wc = remote.clone()
    wc.commit("initial", files=one_stack(stack, services("1")))
    wc.push()
    settings = agent_settings() if webhook else agent_settings(poll_interval=interval)
    if not webhook:
        settings["poll_jitter"] = 0.0
    agent = AgentProcess(lab.folder(f"agent-{mode}"), remote.url, settings)
    since = utcnow()
    agent.start()
    try:
        agent.wait(lambda e: e["event"] == "sync" and e["result"] == "Succeeded", TIMEOUT, since=0)
        observer.converged(stack, "web", image=image("1"), since=since, timeout=TIMEOUT)
        out = []
        for run in range(runs):
            agent.command("idle", quiet=SETTLE)
            tag = tag_of(run)
            sha = wc.commit(f"web: busybox:{tag}", files={COMPOSE: compose(services(tag))})
            mark = agent.mark()
            since = utcnow()
            started = time.monotonic()
            wc.push()
            pushed = time.monotonic()
            if webhook:
                agent.webhook(sha)
            done = observer.converged(stack, "web", image=image(tag), since=since, timeout=TIMEOUT)
            synced = agent.wait(_is_sync(sha), TIMEOUT, since=mark)
            if synced["result"] != "Succeeded":
                raise RuntimeError(f"gitswarm sync of {sha[:12]} failed: {synced['message']}")
            events = agent.after(mark)
            deploy = next(e for e in events if e["event"] == "deploy" and e["stack"] == stack)
            poll = next(e for e in events if e["event"] == "poll" and e["head"] == sha)
            trigger = next((e for e in events if e["event"] == "trigger"), None)
            out.append(
                {
                    "push": pushed - started,
                    "deploy": deploy["start"] - pushed,
                    "deploy_cmd": deploy["end"] - deploy["start"],
                    "converged": done - pushed,
                    "reported": synced["end"] - pushed,
                    # the steps, for the breakdown
                    "to_trigger": (trigger["t"] if trigger else poll["start"]) - pushed,
                    "git": poll["end"] - (trigger["t"] if trigger else poll["start"]),
                    "render_plan": deploy["start"] - poll["end"],
                    "health": synced["end"] - deploy["end"],
                }
            )
        return out
    finally:
        agent.stop()


def measure_naive(
    lab: BenchLab, observer: Observer, runs: int, *, interval: float
) -> list[dict[str, float]]:
    stack = "lat-naive"
    remote = lab.remote(stack)
    wc = remote.clone()
    wc.commit("initial", files=one_stack(stack, services("1")))
    wc.push()
    naive = NaiveAgent(lab.folder("naive"), remote.url, stack, interval)
    since = utcnow()
    naive.start()
    try:
        naive.wait_line("deployed ", TIMEOUT, since=0)
        observer.converged(stack, "web", image=image("1"), since=since, timeout=TIMEOUT)
        out = []
        for run in range(runs):
            time.sleep(SETTLE)
            tag = tag_of(run)
            sha = wc.commit(f"web: busybox:{tag}", files={COMPOSE: compose(services(tag))})
            mark = naive.mark()
            since = utcnow()
            started = time.monotonic()
            wc.push()
            pushed = time.monotonic()
            deploying = naive.wait_line(f"deploying {sha}", TIMEOUT, since=mark)
            done = observer.converged(stack, "web", image=image(tag), since=since, timeout=TIMEOUT)
            deployed = naive.wait_line(f"deployed {sha}", TIMEOUT, since=mark)
            out.append(
                {
                    "push": pushed - started,
                    "deploy": deploying - pushed,
                    "deploy_cmd": deployed - deploying,
                    "converged": done - pushed,
                }
            )
        return out
    finally:
        naive.stop()


def column(rows: list[dict[str, float]], key: str) -> Sample:
    return Sample.of(r[key] for r in rows if key in r)


def run(lab: BenchLab, runs: int, interval: float = 5.0) -> Section:
    started = time.monotonic()
    observer = Observer(lab.swarm())
    results = {
        "floor": measure_floor(lab, observer, runs),
        "webhook": measure_gitswarm(lab, observer, runs, webhook=True, interval=interval),
        "poll": measure_gitswarm(lab, observer, runs, webhook=False, interval=interval),
        "naive": measure_naive(lab, observer, runs, interval=interval),
    }
    floor = column(results["floor"], "converged").median
    names = {
        "floor": "floor: bare docker stack deploy",
        "webhook": "gitswarm, signed webhook",
        "poll": f"gitswarm, polling every {interval:g} s",
        "naive": f"naive agent, sleep {interval:g} s",
    }
    section = Section(
        "1. Push-to-running latency",
        f"A commit flips one service's image (busybox:1 <-> busybox:2) in a 2-service stack. "
        f"Medians of {runs} runs [min..max], from `git push` returning (floor: from "
        f"`docker stack deploy` starting) to the deploy starting and to the service "
        f"converged (new image running, healthy, update complete).",
        header=(
            "contender",
            "-> deploy started",
            "-> converged",
            "ratio",
            "minus floor",
            "gitswarm says converged",
        ),
    )
    for key, rows in results.items():
        converged = column(rows, "converged")
        reported = column(rows, "reported")
        section.rows.append(
            (
                names[key],
                column(rows, "deploy").text(),
                converged.text(),
                ratio(converged.median, floor),
                "" if key == "floor" else signed(converged.median - floor),
                reported.text() if reported.values else "",
            )
        )
    hook = results["webhook"]
    section.notes.append(
        "gitswarm + webhook, where the time goes (medians): webhook answered and queued "
        f"{fmt(column(hook, 'to_trigger').median)}; git ls-remote + fetch "
        f"{fmt(column(hook, 'git').median)}; load config, render, validate, plan "
        f"{fmt(column(hook, 'render_plan').median)}; `docker stack deploy` "
        f"{fmt(column(hook, 'deploy_cmd').median)} (floor's: "
        f"{fmt(column(results['floor'], 'deploy_cmd').median)}); waiting for health and "
        f"recording {fmt(column(hook, 'health').median)}."
    )
    section.notes.append(
        f"`git push` itself took {fmt(column(hook, 'push').median)} (not counted). "
        f"Polling contenders wait on average half an interval ({interval / 2:g} s) for "
        "their next look at the remote, so their medians over few runs scatter."
    )
    started_median = column(hook, "deploy").median
    converged_gap = column(hook, "converged").median - floor
    reported_gap = column(hook, "reported").median - floor
    section.targets += [
        Target(
            "webhook push -> stack deploy started",
            "< 0.5 s",
            fmt(started_median),
            started_median < 0.5,
        ),
        Target(
            "webhook push -> converged, minus the floor",
            "< 1 s",
            signed(converged_gap),
            converged_gap < 1.0,
            note="as observed on the swarm",
        ),
        Target(
            "webhook push -> gitswarm reports converged, minus the floor",
            "< 1 s",
            signed(reported_gap),
            reported_gap < 1.0,
            note="gitswarm checks health every 250 ms",
        ),
    ]
    section.data = {"runs": results, "floor_median": floor, "medians": _medians(results)}
    section.seconds = time.monotonic() - started
    return section


def _medians(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {key: median(r[key] for r in rows) for key in rows[0]} if rows else {}
        for name, rows in results.items()
    }
