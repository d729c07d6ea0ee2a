"""``gitswarm bootstrap --env E``: rebuild every application of an environment on an
empty (or new) swarm from Git alone. Called by cli/bootstrap.py.

    resolve one revision -> preflight -> each application in order: sync -> verify

1. **One revision** for every application: the head of the followed branch (or
   ``--revision``), resolved once, so a push during the bootstrap cannot mix commits.
2. **Preflight**, before any Docker write: the target is a swarm manager; every
   application renders and passes its policies at that revision; every external
   network, volume, secret and config the stacks use exists (plan/external.py). Anything
   missing is reported at once, every item with the command that creates it, and nothing
   is deployed: a half-restored environment is harder to reason about than none.
3. **Sync** each application with ``Reconciler.sync`` (new configs and secrets first,
   then ``docker stack deploy``, which creates the stack's networks and services; wait
   until healthy; recorded in the store like any sync, with the message ``bootstrap``).
   The order is :func:`bootstrap_order`'s: ``depends_on`` first. Each waits until
   those it depends on are Synced/Healthy; if one is not, its dependents are held
   (``DependencyNotReady``), not applied. An application whose revision was rolled back
   and marked bad is restored at the revision that was deployed healthy instead.
4. **Verify**: each application's live status at that revision (Synced/Healthy).

The state store need not survive the disaster: with an empty store every service is
simply created. The age identities must (they are never in Git): the agent's config,
GITSWARM_AGE_KEY_FILE_<ENV> or the keys dir, as for any sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gitswarm.errors import GitswarmError, UsageError
from gitswarm.model.config import Application, RepoConfig
from gitswarm.plan.external import ExternalNeed, external_needs
from gitswarm.policy import raise_for_violations
from gitswarm.reconcile.ordered import held, not_converged
from gitswarm.reconcile.status import LiveStatus, live_status
from gitswarm.reconcile.sync import Reconciler, SyncOutcome, SyncRequest

log = logging.getLogger("gitswarm.bootstrap")

# What creates each kind of external object (shown with a missing one).
_CREATE = {
    "network": "docker network create --driver overlay --attachable {name}",
    "volume": "docker volume create {name}  (on every node that runs a task using it)",
    "secret": "docker secret create {name} FILE",
    "config": "docker config create {name} FILE",
}


def bootstrap_order(config: RepoConfig, env: str) -> list[Application]:
    """The order in which ``bootstrap`` restores the applications of ``env``: the
    ``depends_on`` order of every sync (model/order.py), each after those it depends on;
    otherwise as declared (gitswarm.yml's application first, then applications/*.yml)."""
    return list(config.apps_for(env))


@dataclass(frozen=True)
class Missing:
    """An external object a stack needs that the swarm does not have."""

    app: str
    need: ExternalNeed

    @property
    def hint(self) -> str:
        return _CREATE[self.need.kind].format(name=self.need.name)

    def __str__(self) -> str:
        used = ", ".join(self.need.services) or "no service"
        return (
            f"{self.app}: external {self.need.kind} {self.need.name!r} is missing "
            f"(used by {used}); create it: {self.hint}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "kind": self.need.kind,
            "name": self.need.name,
            "services": list(self.need.services),
            "create": self.hint,
        }


@dataclass(frozen=True)
class AppResult:
    app: str
    outcome: SyncOutcome
    status: LiveStatus | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.outcome.ok
            and self.status is not None
            and (self.status.sync, self.status.health) == ("Synced", "Healthy")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "ok": self.ok,
            "note": self.note,
            "result": self.outcome.as_dict(),
            "status": self.status.as_dict() if self.status else None,
        }


@dataclass(frozen=True)
class BootstrapReport:
    env: str
    revision: str | None
    order: tuple[str, ...] = ()
    missing: tuple[Missing, ...] = ()
    problems: tuple[str, ...] = ()  # preflight failures other than missing objects
    results: tuple[AppResult, ...] = ()
    exit_code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "env": self.env,
            "revision": self.revision,
            "order": list(self.order),
            "missing": [m.as_dict() for m in self.missing],
            "problems": list(self.problems),
            "results": [r.as_dict() for r in self.results],
            "message": self.message,
        }


@dataclass(frozen=True)
class BootstrapRequest:
    env: str
    revision: str | None = None  # None: the head of the followed branch
    actor: str | None = None
    progress: Callable[[str], None] = field(default=lambda _m: None, compare=False)


def bootstrap(r: Reconciler, req: BootstrapRequest) -> BootstrapReport:
    revision = r.source.resolve(req.revision) if req.revision else r.source.head()
    config = r.config_at(revision)
    try:
        env = config.environment(req.env)
    except KeyError as exc:
        raise UsageError(f"{exc.args[0]} (in gitswarm.yml at {revision[:12]})") from None
    apps = bootstrap_order(config, env.name)
    report = BootstrapReport(env.name, revision, tuple(a.name for a in apps))
    if not apps:
        raise UsageError(f"no application is deployed to environment {env.name!r}")

    req.progress(f"preflight: {env.target.name} and {len(apps)} application(s)")
    problems, missing, bad_input = _preflight(r, apps, env.name, revision)
    if problems or missing:
        what = len(problems) + len(missing)
        return replace(
            report,
            missing=tuple(missing),
            problems=tuple(problems),
            exit_code=2 if bad_input else 1,
            message=f"nothing was deployed: {what} problem(s) to fix first",
        )

    results: list[AppResult] = []
    restored: dict[str, bool] = {}
    for app in apps:
        waiting = not_converged(config, app.name, env.name, restored)
        if waiting:  # what it depends on is not Synced/Healthy: not applied
            results.append(AppResult(app.name, held(app.name, env.name, revision, waiting)))
        else:
            req.progress(f"restore {app.name} ({len(results) + 1}/{len(apps)})")
            results.append(_restore(r, app.name, env.name, revision, req.actor))
        restored[app.name] = results[-1].ok
    failed = [x.app for x in results if not x.ok]
    codes = [x.outcome.exit_code for x in results if not x.ok]
    return replace(
        report,
        results=tuple(results),
        exit_code=0 if not failed else (2 if 2 in codes else 1),
        message=(
            f"{env.name} restored: {len(results)} application(s) Synced and Healthy"
            if not failed
            else f"{len(failed)} of {len(results)} application(s) not restored: "
            + ", ".join(failed)
        ),
    )


def _preflight(
    r: Reconciler, apps: Sequence[Application], env: str, revision: str
) -> tuple[list[str], list[Missing], bool]:
    """(problems, missing external objects, whether a problem is bad input)."""
    problems: list[str] = []
    bad_input = False
    needs: list[tuple[str, ExternalNeed]] = []
    target = None
    for app in apps:
        try:
            rendered = r.render(app.name, env, revision)
            if rendered.policy is not None:
                raise_for_violations(rendered.policy)
        except GitswarmError as exc:
            problems.append(f"{app.name}: [{exc.reason}] {exc.message}")
            bad_input = bad_input or exc.exit_code == 2
            continue
        target = rendered.env.target
        needs.extend((app.name, need) for need in external_needs(rendered.desired))
    if target is None:
        return problems, [], bad_input
    swarm = r.swarm_for(target)
    try:
        swarm.check_manager()
        missing: list[Missing] = []
        for kind in ("network", "volume", "secret", "config"):
            names = sorted({n.name for _a, n in needs if n.kind == kind})
            present = swarm.existing(kind, names)
            missing += [Missing(a, n) for a, n in needs if n.kind == kind and n.name not in present]
    except GitswarmError as exc:
        return [*problems, f"[{exc.reason}] {exc.message}"], [], bad_input
    return problems, missing, bad_input


def _restore(r: Reconciler, app: str, env: str, revision: str, actor: str | None) -> AppResult:
    request = SyncRequest(app, env, revision=revision, actor=actor, message="bootstrap")
    outcome = r.sync(request)
    note = ""
    if outcome.result == "Skipped" and outcome.reason == "RevisionMarkedBad":
        # A rollback wins: restore what ran healthy, not the revision rolled back from.
        stored = r.store.get_status(app, env)
        healthy = stored.revision if stored else None
        if healthy and healthy != revision:
            note = (
                f"{revision[:12]} was rolled back and is marked bad; restored the healthy "
                f"{healthy[:12]} instead"
            )
            log.warning("%s/%s: %s", app, env, note)
            outcome = r.sync(replace(request, revision=healthy))
    status = None
    if outcome.ok:
        status = live_status(r, app, env, outcome.rendered)
    return AppResult(app, outcome, status, note)
