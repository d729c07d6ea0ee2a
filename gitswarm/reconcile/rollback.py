"""``gitswarm rollback``: return an environment to a past revision, through Git.

The normal path writes a commit that restores exactly the files the environment's
render reads (found by rendering through a recording Tree, at the current head and at
the target) to their content at the target revision, pushes it, and syncs it: Git stays
the source of truth and history shows why. ``push=False`` is the offline emergency:
the past revision is deployed directly, recorded as such, and the current head is
marked bad so the agent does not re-apply it until Git moves on.

That emergency path and the agent's automatic rollback of a failed deploy
(reconcile/agent/syncs.py) are one and the same ``redeploy``: mark the bad revision,
deploy the last good one, and the recorder says RolledBack and notifies.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

from gitswarm.errors import GitswarmError, NotFoundError, Reason, UsageError
from gitswarm.model.operation import Trigger
from gitswarm.model.tree import Tree
from gitswarm.reconcile.sync import Reconciler, RollbackOf, SyncOutcome, SyncRequest
from gitswarm.repo import load_config
from gitswarm.source.tree import GitTree
from gitswarm.source.writer import push as push_commit
from gitswarm.source.writer import working_copy


@dataclass
class RecordingTree:
    """A Tree that remembers every file path read through it."""

    inner: Tree
    read_paths: set[str] = field(default_factory=set)

    @property
    def revision(self) -> str | None:
        return self.inner.revision

    def read(self, path: str, *, limit: int) -> bytes:
        self.read_paths.add(path)
        return self.inner.read(path, limit=limit)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def is_dir(self, path: str) -> bool:
        return self.inner.is_dir(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)


def render_inputs(r: Reconciler, revision: str, app: str, env: str) -> set[str]:
    """The repository files an app's render in ``env`` reads at ``revision`` (minus the
    repository-wide settings, which belong to every environment)."""
    tree = RecordingTree(GitTree(r.source.git_dir, revision))
    config = load_config(tree)
    environment = config.environment(env)
    with contextlib.suppress(GitswarmError):  # a broken revision still tells what it read
        r.renderer(tree, config).render(app, environment)
    shared = {"gitswarm.yml"} | {p for p in tree.read_paths if p.startswith("applications/")}
    return tree.read_paths - shared


@dataclass(frozen=True)
class RollbackRequest:
    app: str
    env: str
    to: str | None = None  # a revision; None with previous=True
    previous: bool = False
    push: bool = True
    actor: str | None = None
    trigger: Trigger = "cli"
    reason: str = ""


def redeploy(
    r: Reconciler,
    app: str,
    env: str,
    bad: RollbackOf,
    *,
    to: str | None = None,
    message: str,
    trigger: Trigger = "agent",
    actor: str | None = None,
    lock_wait: float = 0.0,
) -> SyncOutcome:
    """Redeploy the last good revision: mark ``bad.revision`` so that nothing deploys it
    again until Git moves on (an explicit ``--revision`` still can), then deploy ``to``
    (default: the last revision that ran healthy, other than the bad one); the recorder
    says RolledBack and notifies. NotFoundError when there is nothing to go back to."""
    r.store.mark_bad(app, env, bad.revision, bad.reason, bad.detail)
    target = to or r.store.last_successful_revision(app, env, exclude={bad.revision})
    if target is None:
        raise NotFoundError(f"no earlier successful deploy of {app} in {env} is recorded")
    return r.sync(
        SyncRequest(
            app,
            env,
            revision=target,
            trigger=trigger,
            actor=actor,
            kind="rollback",
            force_bad=True,
            lock_wait=lock_wait,
            message=message,
            rollback_of=bad,
        )
    )


def rollback(r: Reconciler, req: RollbackRequest) -> SyncOutcome:
    head = r.source.head()
    target = _target(r, req, head)
    why = req.reason or "manual rollback"
    if not req.push:
        return redeploy(
            r,
            req.app,
            req.env,
            RollbackOf(head, Reason.ROLLED_BACK, f"rolled back by hand ({why})"),
            to=target,
            trigger=req.trigger,
            actor=req.actor,
            message=f"emergency rollback to {target[:12]} without a Git commit "
            f"(--no-push): {why}; Git still says {head[:12]}",
        )
    paths = sorted(
        render_inputs(r, head, req.app, req.env) | render_inputs(r, target, req.app, req.env)
    )
    if not paths:
        raise UsageError(f"nothing of {req.app}/{req.env} to roll back")
    with working_copy(r.source) as wc:
        wc.restore(target, paths)
        message = (
            f"Roll back {req.app} in {req.env} to {target[:12]}\n\n"
            f"Reason: {why}\n"
            f"Restored from {target}:\n"
            + "".join(f"  {p}\n" for p in paths)
            + (f"Requested by: {req.actor}\n" if req.actor else "")
        )
        commit = wc.commit(message)  # None: Git already equals the target; just sync it
        hold = None if commit is None else _hold(r, req, head, target, commit, why)
        try:
            new_head = head if commit is None else push_commit(r.source, wc)
        except GitswarmError:
            if hold is not None:
                r.store.release_hold(hold, "gitswarm", "the rollback commit was not pushed")
            raise
    if r.source.remote is not None:
        r.source.fetch()
    outcome = r.sync(
        SyncRequest(
            req.app,
            req.env,
            revision=new_head,
            trigger=req.trigger,
            actor=req.actor,
            kind="rollback",
            force_bad=True,
            message=f"rollback to {target[:12]}: {why}",
        )
    )
    return replace(outcome, message=f"{outcome.message} (rollback commit {new_head[:12]})")


def _tags(r: Reconciler, app: str, env: str, revision: str) -> dict[str, str]:
    """repository -> tag of each service's image at ``revision``."""
    out: dict[str, str] = {}
    for spec in r.render(app, env, revision).desired.services.values():
        image = str(spec.get("image") or "").partition("@")[0]
        slash, colon = image.rfind("/"), image.rfind(":")
        if colon > slash:
            out.setdefault(image[:colon], image[colon + 1 :])
    return out


def _hold(
    r: Reconciler, req: RollbackRequest, head: str, target: str, commit: str, why: str
) -> int | None:
    """A rollback wins over automation (SPEC 4): the hold is written before the rollback
    commit is pushed, so no automation round can see the commit without it. It holds
    the tags the rollback takes away; promote/ releases it (a newer tag, a person)."""
    try:
        before = _tags(r, req.app, req.env, head)
        after = _tags(r, req.app, req.env, target)
    except GitswarmError:
        before, after = {}, {}
    hold, _ = r.store.create_hold(
        req.app,
        req.env,
        reason=f"rolled back by {req.actor or req.trigger} to {target[:12]}: {why}"[:500],
        created_by=req.actor or req.trigger,
        images={repo: tag for repo, tag in before.items() if after.get(repo) != tag},
        from_revision=head,
        to_revision=commit,
    )
    return hold.id


def _target(r: Reconciler, req: RollbackRequest, head: str) -> str:
    if req.to:
        return r.source.resolve(req.to)
    if not req.previous:
        raise UsageError("say where to: --previous or --to REVISION")
    # The last revision that deployed healthy, other than Git's head: after a bad commit
    # that is what ran before it; when the head itself is healthy, the one before.
    found = r.store.last_successful_revision(req.app, req.env, exclude={head})
    if found is None:
        raise NotFoundError(
            f"no earlier successful deploy of {req.app} in {req.env} is recorded; use --to REVISION"
        )
    return found
