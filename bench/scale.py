"""Scale curve: the cost of render + validate + plan as one stack grows.

One application whose stack has N services (10, 100, 500 by default), committed to a
real Git repository. Timed, in this process, as the agent's sync does them
(reconcile/sync.py ``Reconciler.render`` and ``_deploy``):

- read: ``GitTree`` of the commit (``git ls-tree``) and ``load_config`` (gitswarm.yml);
- render: ``render_stack`` — merge, interpolation, checks, labels, spec hashes;
- validate: ``policy.evaluate`` (the built-in rules as the environment configures them);
- plan: ``make_plan`` against a ``FakeSwarm`` (no Docker: the pure cost) — the first
  deploy (everything new), a no-op (deployed, with baselines), one service changed;
- file: the deployable compose file of the first deploy (``to_yaml``).

No lab is needed; each figure is the median of a few repetitions.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from bench.gitops import COMPOSE, ENV, one_stack, service
from bench.report import Section, fmt, median
from gitswarm.model.observed import StackState
from gitswarm.model.operation import Baseline
from gitswarm.model.stack import DesiredStack
from gitswarm.plan import deployable_compose, make_plan
from gitswarm.policy import evaluate
from gitswarm.policy.rego import evaluate_rego
from gitswarm.render import render_stack, to_yaml
from gitswarm.repo import load_config
from gitswarm.repo.policies import rego_sources
from gitswarm.source.tree import GitTree
from gitswarm.swarm.fake import FakeSwarm
from harness.gitserve import WorkingCopy, git_env

T = TypeVar("T")
STACK = "scale"


def services(count: int, changed: int | None = None) -> dict[str, Any]:
    """``count`` services of realistic size; service ``changed`` runs busybox:2."""
    out = {}
    for i in range(count):
        out[f"svc{i:03d}"] = service(
            "2" if i == changed else "1",
            environment={"SERVICE": f"svc{i:03d}", "LOG_LEVEL": "info", "PORT": "4000"},
            labels={"com.example.service": f"svc{i:03d}"},
        )
        out[f"svc{i:03d}"]["deploy"].update(
            {
                "labels": {"com.example.team": "bench"},
                "resources": {"limits": {"cpus": "0.10", "memory": "32M"}},
            }
        )
    return out


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def baselines(desired: DesiredStack, observed: StackState) -> dict[str, Baseline]:
    """What the store would hold after gitswarm deployed ``desired``."""
    now = dt.datetime.now(dt.UTC)
    out = {}
    for live in observed.services:
        name = live.compose_name
        out[name] = Baseline(
            app=desired.app,
            env=desired.env,
            service=name,
            spec=live.spec,
            version=live.version,
            spec_hash=desired.service_hashes[name],
            revision=desired.revision,
            updated_at=now,
            rendered=desired.services[name],
        )
    return out


def once(repo: Path, first: str, second: str) -> dict[str, float]:
    """One pass over the pipeline's pure steps; seconds per step."""
    out: dict[str, float] = {}
    now = dt.datetime.now(dt.UTC)
    t_tree, tree = timed(lambda: GitTree(repo, first))
    t_config, config = timed(lambda: load_config(tree))
    out["read"] = t_tree + t_config
    out["render"], desired = timed(lambda: render_stack(tree, config, "app", ENV, None))
    environment = config.environment(ENV)
    out["validate"], _ = timed(
        lambda: evaluate(
            desired, environment, rego_sources=rego_sources(tree), now=now, rego=evaluate_rego
        )
    )
    empty = StackState(stack=desired.stack, services=(), objects=())
    out["plan_first"], plan = timed(lambda: make_plan(desired, empty, {}, prune=True, heal=True))
    out["file"], compose = timed(
        lambda: to_yaml(replace(desired, compose=deployable_compose(desired, plan.to_deploy)))
    )

    swarm = FakeSwarm()
    swarm.deploy(desired.stack, compose, resolve_image="never")
    observed = swarm.observe(desired.stack)
    known = baselines(desired, observed)
    out["plan_noop"], noop = timed(
        lambda: make_plan(desired, observed, known, prune=True, heal=True)
    )
    assert noop.empty, "a no-op plan must deploy nothing"

    tree2 = GitTree(repo, second)
    changed = render_stack(tree2, load_config(tree2), "app", ENV, None)
    out["plan_change"], change = timed(
        lambda: make_plan(changed, observed, known, prune=True, heal=True)
    )
    assert change.to_deploy == ("svc000",), change.to_deploy
    return out


def measure(count: int, repeats: int, folder: Path) -> dict[str, float]:
    env = git_env(folder / "git-config")
    repo = folder / f"repo-{count}"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=env, check=True)
    wc = WorkingCopy(repo, env)
    first = wc.commit("first", files=one_stack(STACK, services(count)))
    second = wc.commit("one image", files={COMPOSE: one_stack(STACK, services(count, 0))[COMPOSE]})
    passes = [once(repo, first, second) for _ in range(repeats)]
    out = {key: median(p[key] for p in passes) for key in passes[0]}
    out["total"] = out["read"] + out["render"] + out["validate"] + out["plan_first"] + out["file"]
    return out


def run(sizes: Sequence[int], repeats: int) -> Section:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gitswarm-bench-scale-") as tmp:
        results = {count: measure(count, repeats, Path(tmp)) for count in sizes}
    section = Section(
        "4. Scale curve: render + plan of one stack",
        f"One stack of N services, rendered from a real Git commit and planned against an "
        f"in-memory swarm (pure cost, no Docker). Medians of {repeats} repetitions.",
        header=(
            "services",
            "read",
            "render",
            "validate",
            "plan: first",
            "plan: no-op",
            "plan: 1 changed",
            "file",
            "render+plan",
            "per service",
            "growth",
        ),
    )
    previous: tuple[int, float] | None = None
    for count, r in results.items():
        growth = ""
        if previous is not None:
            n0, t0 = previous
            growth = f"{r['total'] / t0:.1f}x for {count / n0:.0f}x"
        section.rows.append(
            (
                str(count),
                fmt(r["read"]),
                fmt(r["render"]),
                fmt(r["validate"]),
                fmt(r["plan_first"]),
                fmt(r["plan_noop"]),
                fmt(r["plan_change"]),
                fmt(r["file"]),
                fmt(r["total"]),
                f"{r['total'] / count * 1e6:.0f} µs",
                growth,
            )
        )
        previous = (count, r["total"])
    section.notes.append(
        "render+plan = read + render + validate + first plan + file. 'growth': how much "
        "the time grows from the size above (linear growth: the two numbers match)."
    )
    section.data = {"sizes": {str(k): v for k, v in results.items()}}
    section.seconds = time.monotonic() - started
    return section
