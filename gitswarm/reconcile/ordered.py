"""Syncing several applications of one environment in their ``depends_on`` order
(model/order.py): each is applied only once every application it depends on has
converged in this run; the dependents of one that did not are held, not applied.

Called by ``gitswarm sync --env E`` (cli/ops.py) and ``gitswarm bootstrap`` (bootstrap.py):
only the dependencies that are part of the run hold an application back (``sync --app
web`` is an explicit request for web alone).

The agent keeps the same rule with its own scheduling (reconcile/agent.py), from the
helpers at the end: its queue does not start a sync while one of the application's
dependencies has a sync pending or running (:func:`busy_dependencies`); a sync whose
dependencies are not Synced/Healthy after their own last sync is held
(:func:`unready_dependencies`, status ``DependencyNotReady``); and a dependency that
converges queues the syncs of its held dependents again (:func:`held_dependents`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from gitswarm.errors import Reason
from gitswarm.model.config import RepoConfig
from gitswarm.model.operation import AppStatus
from gitswarm.reconcile.sync import SyncOutcome

DEPENDENCY_NOT_READY = Reason.DEPENDENCY_NOT_READY


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


# --- the agent's rule ------------------------------------------------------------------


def busy_dependencies(
    config: RepoConfig, app: str, env: str, busy: Callable[[str], bool]
) -> tuple[str, ...]:
    """The dependencies of ``app`` in ``env`` for which ``busy(name)`` says that a sync is
    pending or running: ``app`` must wait for it to end."""
    return tuple(d for d in config.dependencies(app, env) if busy(d))


def _ready(status: AppStatus | None) -> bool:
    return (
        status is not None
        and status.health == "Healthy"
        and status.last_result == "Succeeded"
        and status.reason != DEPENDENCY_NOT_READY  # held itself: not at what Git says
    )


def unready_dependencies(
    config: RepoConfig, app: str, env: str, status_of: Callable[[str], AppStatus | None]
) -> list[str]:
    """The dependencies of ``app`` in ``env`` that have not converged: not Healthy, their
    last operation not a success (a failure, or a rollback from the commit that failed),
    or held themselves by one of theirs."""
    return [d for d in config.dependencies(app, env) if not _ready(status_of(d))]


def waiting_message(unready: Sequence[str], status_of: Callable[[str], AppStatus | None]) -> str:
    """What a held application's status says it waits for."""
    parts = []
    for name in unready:
        status = status_of(name)
        if status is None:
            parts.append(f"{name!r} (never synced)")
        else:
            last = status.last_result or "no operation"
            parts.append(
                f"{name!r} ({status.health}, {last}{f': {status.reason}' if status.reason else ''})"
            )
    return f"waiting for {', '.join(parts)} to converge before this application is applied"


def held_dependents(
    config: RepoConfig, app: str, env: str, status_of: Callable[[str], AppStatus | None]
) -> list[str]:
    """The applications of ``env`` that depend on ``app`` and are held waiting: to be
    synced again now that ``app`` has converged."""
    out = []
    for other in config.apps_for(env):
        if app in config.dependencies(other.name, env):
            status = status_of(other.name)
            if status is not None and status.reason == DEPENDENCY_NOT_READY:
                out.append(other.name)
    return out
