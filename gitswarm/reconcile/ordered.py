"""Syncing several applications of one environment in their ``depends_on`` order
(model/order.py): each is applied only once every application it depends on has
converged in this run; the dependents of one that did not are held, not applied.

Called by ``gitswarm sync --env E`` (cli/ops.py) and ``gitswarm bootstrap`` (bootstrap.py);
the agent's queue keeps the same rule with its own scheduling.

Only the dependencies that are part of the run hold an application back: ``sync --app
web`` is an explicit request for web alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gitswarm.model.config import RepoConfig
from gitswarm.reconcile.sync import SyncOutcome

DEPENDENCY_NOT_READY = "DependencyNotReady"


def not_converged(
    config: RepoConfig, app: str, env: str, done: Mapping[str, bool]
) -> tuple[str, ...]:
    """The applications of this run that ``app`` depends on in ``env`` and that did not
    converge (``done``: app name -> whether it converged, for those already run)."""
    return tuple(d for d in config.dependencies(app, env) if d in done and not done[d])


def held(app: str, env: str, revision: str | None, waiting: Sequence[str]) -> SyncOutcome:
    """The outcome of an application not applied because ``waiting`` did not converge."""
    names = ", ".join(repr(w) for w in waiting)
    return SyncOutcome(
        app,
        env,
        revision,
        "Skipped",
        DEPENDENCY_NOT_READY,
        message=f"not applied: it depends on {names}, which did not converge; fix "
        f"{'it' if len(waiting) == 1 else 'them'} first",
        exit_code=1,
    )


def sync_in_order(
    config: RepoConfig,
    env: str,
    apps: Sequence[str],
    sync: Callable[[str], SyncOutcome],
    *,
    revision: str | None = None,
    converged: Callable[[SyncOutcome], bool] = lambda o: o.result == "Succeeded",
) -> list[SyncOutcome]:
    """``sync`` each of ``apps`` in the environment's order, holding back the dependents
    of any that did not converge (``converged`` judges an outcome; ``revision`` is what
    a held one would have been synced at, for its outcome)."""
    chosen = set(apps)
    order = [a.name for a in config.apps_for(env) if a.name in chosen]
    order += [a for a in apps if a not in order]  # not deployed there: sync says so
    done: dict[str, bool] = {}
    outcomes: list[SyncOutcome] = []
    for name in order:
        waiting = not_converged(config, name, env, done)
        outcome = held(name, env, revision, waiting) if waiting else sync(name)
        done[name] = not waiting and converged(outcome)
        outcomes.append(outcome)
    return outcomes
